"""Helpers of ``python -m benchmarks.search_quality``: stand-alone training, supernet ranking, latency, report."""
