"""Benchmarks (not tests): `python -m benchmarks [PART ...] [options]`."""
