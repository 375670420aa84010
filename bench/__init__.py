"""Benchmarks: run with `make bench` (or `python -m bench`); they print figures, never assert."""
