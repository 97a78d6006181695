"""Benchmarks: the seed's Table 5 inference-timing protocol (inference_time) and per-op kernel benchmarks."""
