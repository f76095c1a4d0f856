"""Temporal activities: every piece of I/O the platform does on behalf of a process."""
