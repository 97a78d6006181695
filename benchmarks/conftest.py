"""pytest-benchmark runs (bench_*.py): ``--threads N`` sets torch's CPU threads, as the other benchmarks' flag.

    pytest benchmarks/bench_lite_conv.py --threads 1 --benchmark-columns=median,iqr,ops
"""
import torch


def pytest_addoption(parser):
    parser.addoption("--threads", type=int, default=None, metavar="N",
                     help="torch CPU threads for the benchmarks (torch.set_num_threads; default: torch's choice)")


def pytest_configure(config):
    threads = config.getoption("--threads")
    if threads is not None:
        if threads < 1:
            raise ValueError(f"bad value {threads}, --threads, expected an integer >= 1")
        torch.set_num_threads(threads)
