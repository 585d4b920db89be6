"""Benchmarks: `make bench` (python -m bench) runs every scenario on the project's own nodes."""
