"""Benchmarks run by `trucktrack bench ...`; their figures go to BENCHMARKS.md."""
