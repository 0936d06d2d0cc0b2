"""`make bench`: the service's own benchmark (see bench/run.py and docs/performance.md)."""
