"""Benchmarks behind ``flowlog bench NAME``: each compares flowlog with a baseline measured in
the same run, because this machine is shared and noisy (docs/benchmarks.md)."""
