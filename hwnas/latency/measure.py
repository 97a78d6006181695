"""Measuring a latency table on the current device: every candidate at every layer plus the fixed parts.

Each entry is a real module (``CDBlock``, ``Stem``, ``DownSample``, the neck's inference path) run on a
random input of its exact shape in eval mode under ``torch.inference_mode``. Timing is interleaved: every
round times each entry once, so a burst of load from other processes spreads over all entries instead of
biasing a few; the table keeps the median of the rounds and the interquartile range. GPU samples use CUDA
events. CPU samples use a fixed ``torch.set_num_threads`` and either wall time (``time.perf_counter``) or,
with one thread, the thread's CPU time (``time.thread_time``): on a machine shared with other jobs the
latter leaves out the time the scheduler gives to other processes, which wall time would count.
"""
from __future__ import annotations

import datetime as _dt
import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from hwnas import ops
from hwnas.envinfo import device_name, machine_load, software_versions
from hwnas.errors import RuntimeUnavailableError, UsageError
from hwnas.latency.schema import (
    DTYPES,
    Device,
    FixedEntry,
    LayerEntry,
    LayerKey,
    Provenance,
    Setting,
    TableData,
    covered_spaces,
    expected_fixed_shapes,
    expected_layer_keys,
)
from hwnas.models.necks import build_neck
from hwnas.space.blocks import CDBlock, DownSample, Stem
from hwnas.space.macro import macro_spec

log = logging.getLogger(__name__)
TORCH_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
TIMERS: tuple[str, ...] = ("auto", "wall", "thread_cpu", "cuda_events")


@dataclass(frozen=True)
class MeasureConfig:
    """How to time: device ``cpu``/``cuda``, rounds (``repeats``) after ``warmup`` calls, CPU thread count."""

    device: str = "cpu"
    warmup: int = 10
    repeats: int = 50
    threads: int | None = 1
    backend: str = "eager"
    seed: int = 0
    progress: bool = True
    timer: str = "auto"

    def __post_init__(self) -> None:
        if self.device not in ("cpu", "cuda"):
            raise UsageError(f"unknown device {self.device!r}, MeasureConfig.device, expected 'cpu' or 'cuda'")
        if self.timer not in TIMERS:
            raise UsageError(f"unknown timer {self.timer!r}, --timer, expected one of {', '.join(TIMERS)}")
        if self.repeats < 3 or self.warmup < 0:
            raise UsageError(f"repeats {self.repeats} / warmup {self.warmup}, --repeats / --warmup, expected "
                             "repeats >= 3 and warmup >= 0")


class HeadPath(nn.Module):
    """The neck's inference path as one module: ``(mid, last) -> inference feature``."""

    def __init__(self, neck: nn.Module) -> None:
        super().__init__()
        self.neck = neck

    def forward(self, mid: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        return self.neck([mid, last])


def apply_threads(threads: int | None) -> None:
    if threads is not None:
        torch.set_num_threads(threads)


def resolve_timer(timer: str, device: str, threads: int | None) -> str:
    """``auto``: CUDA events on GPU, thread CPU time for single-threaded CPU runs, else wall time."""
    if device == "cuda":
        if timer not in ("auto", "cuda_events"):
            raise UsageError(f"timer {timer!r} on cuda, --timer, expected cuda_events (or auto)")
        return "cuda_events"
    if timer == "cuda_events":
        raise UsageError("the cuda_events timer on the CPU, --timer, expected --device cuda for cuda_events")
    if timer == "thread_cpu" and threads != 1:
        raise UsageError(f"the thread_cpu timer with {threads} threads, --timer, expected --threads 1 (it needs "
                         "exactly 1 CPU thread)")
    if timer == "auto":
        return "thread_cpu" if threads == 1 else "wall"
    return timer


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_interleaved(calls: Sequence[Callable[[], Any]], device: str, warmup: int, repeats: int,
                     progress: bool = False, desc: str = "timing", timer: str = "wall",
                     prime: bool = True) -> list[list[float]]:
    """Per-call latency samples in ms: ``repeats`` rounds, each timing every call once (after ``warmup``).

    ``timer`` as returned by :func:`resolve_timer` (``cuda_events`` on GPU). With ``prime`` each timed call
    directly follows an untimed one, so its weights and input are as warm in cache as inside a whole network
    (where a layer reads the output its predecessor has just written); otherwise every sample would pay for
    the cache misses left by the other entries of the round.
    """
    with torch.inference_mode():
        for call in calls:
            for _ in range(warmup):
                call()
        _sync(device)
        samples: list[list[float]] = [[] for _ in calls]
        for _ in tqdm(range(repeats), desc=desc, disable=not progress, unit="round"):
            for i, call in enumerate(calls):
                if prime:
                    call()
                    _sync(device)
                samples[i].append(_time_once(call, timer))
    return samples


def _time_once(call: Callable[[], Any], timer: str) -> float:
    if timer == "cuda_events":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))
    clock = time.thread_time if timer == "thread_cpu" else time.perf_counter
    t0 = clock()
    call()
    return (clock() - t0) * 1e3


def summarize(samples: Sequence[float]) -> tuple[float, float]:
    """(median, interquartile range) in ms."""
    q = statistics.quantiles(samples, n=4, method="inclusive")
    return float(statistics.median(samples)), float(q[2] - q[0])


def entry_modules(setting: Setting, spaces: Sequence[str]
                  ) -> list[tuple[LayerKey | str, int, nn.Module, tuple[tuple[int, ...], ...]]]:
    """(key or fixed-part name, out channels, module, input shapes with batch) for every entry of a table.

    Shared by measurement (real tensors) and prediction (meta tensors), so both see the same ops.
    """
    spec = macro_spec(setting.width_mult)
    shapes = expected_fixed_shapes(setting)
    b, p, last = setting.batch_size, spec.planes, shapes["head"]
    head = HeadPath(build_neck(setting.neck, spec.feature_channels, num_classes=1))
    items: list[tuple[LayerKey | str, int, nn.Module, tuple[tuple[int, ...], ...]]] = [
        ("stem", p[0], Stem(p[0]), ((b, *shapes["stem"]),)),
        ("downsample1", p[1], DownSample(p[1]), ((b, *shapes["downsample1"]),)),
        ("downsample2", p[2], DownSample(p[2]), ((b, *shapes["downsample2"]),)),
        ("head", last[0], head, ((b, p[2], last[1], last[2]), (b, *last))),
    ]
    keys: dict[LayerKey, None] = {}
    for space in spaces:
        keys.update(dict.fromkeys(expected_layer_keys(setting, space)))
    for key in keys:
        ls, c = spec.layers[key.layer], key.candidate
        block = CDBlock(ls.in_channels, ls.out_channels, c.k1, c.k2, c.r)
        items.append((key, ls.out_channels, block, ((b, *key.input_shape),)))
    return items


def workload(setting: Setting, spaces: Sequence[str], device: str, seed: int = 0
             ) -> list[tuple[LayerKey | str, int, Callable[[], Any]]]:
    """(key or fixed-part name, out channels, zero-argument call on random inputs) for every entry."""
    if setting.dtype not in DTYPES:
        raise UsageError(f"unknown dtype {setting.dtype!r}, --dtype, expected one of {', '.join(DTYPES)}")
    torch.manual_seed(seed)
    dev, dtype = torch.device(device), TORCH_DTYPES[setting.dtype]
    items = []
    for key, out, module, in_shapes in entry_modules(setting, spaces):
        module = module.to(device=dev, dtype=dtype).eval()
        inputs = [torch.randn(s, device=dev, dtype=dtype) for s in in_shapes]
        items.append((key, out, lambda m=module, xs=inputs: m(*xs)))
    return items


def build(setting: Setting, config: MeasureConfig, name: str, spaces: Sequence[str] = ("cnet", "cdnet")) -> TableData:
    """Measure every entry of a table for ``setting`` on ``config.device`` and return it (not yet saved)."""
    if config.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeUnavailableError("no CUDA device (torch sees none), --device cuda, expected a machine with a "
                                      "CUDA GPU or --device cpu")
    threads = config.threads if config.device == "cpu" else None
    setting = Setting(setting.batch_size, setting.dtype, setting.resolution, setting.width_mult, setting.neck, threads)
    apply_threads(threads)
    timer = resolve_timer(config.timer, config.device, threads)
    if config.device == "cuda":
        torch.backends.cudnn.benchmark = True
    load_before = machine_load()
    with ops.use_backend(config.backend):
        items = workload(setting, spaces, config.device, config.seed)
        log.info("timing %d entries x %d rounds on %s", len(items), config.repeats, config.device)
        samples = time_interleaved([c for _, _, c in items], config.device, config.warmup, config.repeats,
                                   config.progress, desc=f"build {name}", timer=timer)
    fixed, layers = [], []
    shapes = expected_fixed_shapes(setting)
    for (key, out, _), s in zip(items, samples):
        med, iqr = summarize(s)
        if isinstance(key, str):
            fixed.append(FixedEntry(key, shapes[key], med, iqr))
        else:
            layers.append(LayerEntry(key, out, med, iqr))
    details = {"timer": timer, "warmup": config.warmup,
               "repeats": config.repeats, "interleaved": True, "statistic": "median", "ops_backend": config.backend,
               "load_before": load_before, "load_after": machine_load(), "seed": config.seed}
    prov = Provenance("measured", _now(), software_versions(), details)
    device = Device(device_name(config.device), config.device, None)
    return TableData(name, device, prov, setting, covered_spaces(tuple(layers), setting), tuple(fixed), tuple(layers))


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
