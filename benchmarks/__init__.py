"""Benchmarks: the seed's Table 5 inference-timing protocol (inference_time) and per-op kernel benchmarks."""

from hwnas._startup import install_quiet_interrupt

install_quiet_interrupt()  # python -m benchmarks.<name>: a Ctrl-C during its imports ends quietly (exit 130)
