"""skillyard's benchmark suite: `make bench` runs bench/run.py (see BENCHMARKS.md)."""
