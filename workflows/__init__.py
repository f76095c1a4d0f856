"""Deterministic Temporal workflow code. No I/O, wall clock, randomness or threads here."""
