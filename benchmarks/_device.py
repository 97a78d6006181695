"""Timing and device helpers shared by the kernel benchmarks (bench_*.py, search_step.py, inference.py)."""
from __future__ import annotations

import math
import os
import statistics
import time
from typing import Callable, Optional

import torch

from hwnas.envinfo import device_name, machine_load

# Peak DRAM bandwidth in GB/s from the vendors' spec sheets, matched on torch.cuda.get_device_name().
PEAK_GBPS: dict[str, float] = {
    "H200": 4800.0, "H100 SXM": 3350.0, "H100 80GB HBM3": 3350.0, "H100 PCIe": 2000.0, "H100 NVL": 3900.0,
    "A100-SXM4-80GB": 2039.0, "A100 80GB PCIe": 1935.0, "A100-SXM4-40GB": 1555.0, "A100-PCIE-40GB": 1555.0,
    "L40S": 864.0, "L4": 300.0, "A10": 600.0, "V100": 900.0, "RTX 4090": 1008.0, "RTX 3090": 936.0,
    "RTX 2080 Ti": 616.0, "RTX 2080": 448.0, "T4": 320.0,
}


def describe(device: torch.device) -> str:
    """One line naming the device and software, printed by every benchmark."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        cap = ".".join(map(str, torch.cuda.get_device_capability(device)))
        hw = f"{name} (sm {cap}, {torch.cuda.get_device_properties(device).total_memory / 2**30:.0f} GiB)"
    else:
        load = machine_load()
        hw = f"CPU {device_name(device)}, {torch.get_num_threads()} threads, load {load[0] if load else 'n/a'}"
    try:
        import triton
        tv = triton.__version__
    except ImportError:
        tv = "absent"
    return f"{hw}; torch {torch.__version__}, triton {tv}, TRITON_INTERPRET={os.environ.get('TRITON_INTERPRET', '0')}"


def peak_gbps(device: torch.device, override: Optional[float] = None) -> Optional[float]:
    """The device's peak memory bandwidth (GB/s), None when unknown (CPU, or a GPU not in the table)."""
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key in sorted(PEAK_GBPS, key=len, reverse=True):  # most specific name first
        if key in name:
            return PEAK_GBPS[key]
    return None


def time_ms(fn: Callable[[], object], device: torch.device, warmup: int = 3, repeats: int = 20) -> tuple[float, float]:
    """(median, interquartile range) wall time of ``fn`` in milliseconds, the device synchronised per call."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return statistics.median(times), q[2] - q[0]


def lite_conv_min_bytes(n: int, groups: int, channels: int, h: int, w: int, elem: int, shared: bool) -> int:
    """Minimal DRAM traffic of one fused LiteConv launch: read the input once, write z once (weights negligible)."""
    read = n * channels * h * w * (1 if shared else groups)
    write = n * groups * channels * h * w
    return (read + write) * elem + groups * channels * (channels + 9) * elem


EMPTY = "\u2013"  # an en dash: a cell with no value (a backend that did not run), never 'nan'


def ratio_cell(numerator: float | None, denominator: float | None, spec: str = ".2f", suffix: str = "x") -> str:
    """``numerator / denominator`` formatted (e.g. ``1.53x``), or :data:`EMPTY` when either is missing or NaN."""
    if numerator is None or denominator is None or not denominator or math.isnan(numerator) or math.isnan(denominator):
        return EMPTY
    return f"{numerator / denominator:{spec}}{suffix}"


def add_threads_argument(p) -> None:
    """``--threads N`` (torch CPU threads) for a benchmark CLI; apply it with :func:`apply_threads`."""
    from hwnas import _cli

    p.add_argument("--threads", type=_cli.int_at_least(1, _cli.MAX_THREADS), default=None, metavar="N",
                   help="torch CPU threads (torch.set_num_threads; default: torch's choice)")


def apply_threads(threads: Optional[int]) -> None:
    if threads is not None:
        if threads < 1:
            raise SystemExit(f"error: bad value {threads}, --threads, expected an integer >= 1")
        torch.set_num_threads(threads)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured Markdown table (printed by the CLIs and written to results files)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def write_text_atomic(path: str, text: str) -> None:
    """Write via a temporary file and rename, so a killed run never leaves half a results file (hwnas._io)."""
    from hwnas._io import write_text_atomic as write

    write(path, text)


def backend_runner(name: str, model: torch.nn.Module) -> tuple[torch.nn.Module, str]:
    """(callable model, ops backend) for a benchmark column: ``compiled`` = torch.compile of the eager model."""
    if name == "compiled":
        return torch.compile(model), "eager"
    return model, name


# The columns a kernel benchmark can time: hwnas.ops backends plus ``compiled`` (torch.compile of the eager model).
COLUMNS = ("eager", "compiled", "batched", "triton", "cpp")


def parse_backends(text: str) -> list[str]:
    """argparse type for ``--backends``: comma-separated names from :data:`COLUMNS`, no repeats."""
    import argparse

    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [n for n in names if n not in COLUMNS]
    if not names or bad or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"bad value {text!r}, expected distinct comma-separated names from "
                                         f"{', '.join(COLUMNS)}")
    return names


def check_output_file(path) -> None:
    """A results file whose folder exists or can be made, and that is not a folder itself (error: ... exit 2)."""
    from pathlib import Path

    from hwnas import _cli
    from hwnas.errors import OutputError

    path = Path(path)
    if path.is_dir():
        raise OutputError(f"output path is a folder, --output {path}, expected a file name like results.md")
    _cli.check_output_file(path)
