"""Benchmarks, each runnable as `python -m benchmarks.<name>`; results go to BENCHMARKS.md."""
