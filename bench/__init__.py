"""Benchmark scripts (not tests): run them from the repo root, e.g. `.venv/bin/python bench/dashboard.py`."""
