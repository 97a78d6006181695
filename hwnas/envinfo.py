"""What a measurement ran on: device name, software versions, machine load.

Every latency table, benchmark and report records these with its numbers, so they live in one place.
"""
from __future__ import annotations

import os
import platform
from typing import Iterable, Union

import torch

from hwnas._version import __version__


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (falls back to ``platform``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def device_name(device: Union[str, torch.device] = "cpu") -> str:
    """``'NVIDIA H100 80GB HBM3'`` on CUDA, ``'<cpu model> (N cores)'`` on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({os.cpu_count()} cores)"


def _version_of(module: str) -> str:
    try:
        return str(getattr(__import__(module), "__version__", "?"))
    except ImportError:
        return "not installed"


def software_versions(extra_modules: Iterable[str] = ()) -> dict[str, str]:
    """Python, torch, hwnas (+ CUDA/cuDNN when present, + ``extra_modules``): what changes kernel choice."""
    versions = {"python": platform.python_version(), "torch": torch.__version__, "hwnas": __version__}
    if torch.version.cuda:
        versions["cuda"] = str(torch.version.cuda)
    if torch.backends.cudnn.is_available():
        versions["cudnn"] = str(torch.backends.cudnn.version())
    for module in extra_modules:
        versions[module] = _version_of(module)
    return versions


def machine_load() -> list[float]:
    """1/5/15-minute load averages (``uptime``); recorded because CPU timings depend on them."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return []
