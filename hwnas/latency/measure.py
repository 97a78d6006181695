"""Measuring a latency table on the current device: every candidate at every layer plus the fixed parts.

Each entry is a real module (``CDBlock``, ``Stem``, ``DownSample``, the neck's inference path) run on a
random input of its exact shape, on the runtime the network will be deployed on: ``eager`` PyTorch (eval
mode, ``torch.inference_mode``, an ``hwnas.ops`` backend), hwnas's compiled ``cpp`` ops (BN folded), or
``onnxruntime`` / ``openvino`` (the BN-folded block exported as an ONNX graph at its input shape). Timing is
interleaved (:mod:`hwnas.latency.timing`). On the CPU the process heap is kept steady first
(:func:`hwnas.deploy.steady_heap`): with glibc's defaults, page faults from memory handed back to the OS and
touched again cost a share of every forward that depends on the whole network's allocations, so isolated
entries would not add up. ``--calibrate N`` then times N genotypes end to end and fits the table's
composition (:mod:`hwnas.latency.composition`).
"""
from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from hwnas import ops
from hwnas.deploy.heap import heap_state, steady_heap
from hwnas.deploy.runtimes import compile_module, runtime_version
from hwnas.envinfo import device_name, machine_load, software_versions
from hwnas.errors import RuntimeUnavailableError, UsageError
from hwnas.latency.composition import METHODS, CalibrationPoint, Composition, fit_composition
from hwnas.latency.endtoend import TORCH_DTYPES, check_runtime, random_genotypes, time_networks
from hwnas.latency.expected import LatencyTable
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
from hwnas.latency.timing import (  # re-exported: reports and tests import them from here
    TIMERS,
    apply_threads,
    resolve_timer,
    summarize,
    time_interleaved,
)
from hwnas.models.necks import build_neck
from hwnas.space.blocks import CDBlock, DownSample, Stem
from hwnas.space.genotype import Genotype
from hwnas.space.macro import macro_spec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MeasureConfig:
    """How to time: device ``cpu``/``cuda``, rounds (``repeats``) after ``warmup`` calls, CPU thread count, the
    runtime, the heap (``steady``/``default``), and how many genotypes to time end to end for the composition
    (``calibrate``, 0 = none; fitted with ``composition``: ``affine``, ``offset`` or ``none``)."""

    device: str = "cpu"
    warmup: int = 10
    repeats: int = 50
    threads: int | None = 1
    backend: str = "eager"
    seed: int = 0
    progress: bool = True
    timer: str = "auto"
    runtime: str = "eager"
    heap: str = "steady"
    calibrate: int = 0
    composition: str = "affine"

    def __post_init__(self) -> None:
        if self.heap not in ("steady", "default"):
            raise UsageError(f"unknown heap {self.heap!r}, --heap, expected 'steady' or 'default'")
        if self.calibrate < 0:
            raise UsageError(f"calibrate {self.calibrate}, --calibrate, expected an integer >= 0")
        if self.composition not in METHODS:
            raise UsageError(f"unknown composition {self.composition!r}, --composition, expected one of "
                             f"{', '.join(METHODS)}")
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


def workload(setting: Setting, spaces: Sequence[str], device: str, seed: int = 0, runtime: str = "eager"
             ) -> list[tuple[LayerKey | str, int, Callable[[], Any]]]:
    """(key or fixed-part name, out channels, zero-argument call on random inputs) for every entry.

    ``eager`` calls the module itself (under the caller's ``hwnas.ops`` backend); any other runtime calls a
    :func:`hwnas.deploy.compile_module` session of it, built at the entry's exact input shapes.
    """
    if setting.dtype not in DTYPES:
        raise UsageError(f"unknown dtype {setting.dtype!r}, --dtype, expected one of {', '.join(DTYPES)}")
    check_runtime(runtime, device, setting.dtype)
    torch.manual_seed(seed)
    dev, dtype = torch.device(device), TORCH_DTYPES[setting.dtype]
    items = []
    for key, out, module, in_shapes in entry_modules(setting, spaces):
        inputs = [torch.randn(s, device=dev, dtype=dtype) for s in in_shapes]
        if runtime == "eager":
            module = module.to(device=dev, dtype=dtype).eval()
            items.append((key, out, lambda m=module, xs=inputs: m(*xs)))
        else:
            sess = compile_module(module.eval(), inputs, runtime, setting.threads, name=str(key))
            items.append((key, out, sess.bind(*inputs)))
    return items


def calibration_genotypes(table: LatencyTable, space: str, n: int, seed: int) -> list[Genotype]:
    """The fastest and the slowest genotype by the raw table (they pin the fit's scale), then random ones."""
    m = table.raw_matrix(space)
    ends = [Genotype.from_indices(space, m.argmin(dim=1).tolist()), Genotype.from_indices(space, m.argmax(dim=1).tolist())]
    chosen = ends[:n] if n <= 2 else ends
    return chosen + random_genotypes(space, max(n - len(chosen), 0), seed=seed, exclude=chosen)


def fit_table_composition(raw: TableData, config: MeasureConfig, timer: str) -> Composition:
    """Time ``config.calibrate`` genotypes end to end on the table's runtime and fit its composition."""
    table = LatencyTable(raw)
    space = "cdnet" if "cdnet" in raw.spaces else raw.spaces[0]
    genos = calibration_genotypes(table, space, config.calibrate, seed=config.seed + 1)
    log.info("calibrating the composition on %d %s genotypes timed end to end", len(genos), space)
    timed = time_networks(genos, raw.setting, config.runtime, config.device, backend=config.backend,
                          warmup=max(config.warmup // 2, 1), repeats=config.repeats, timer=timer, seed=config.seed,
                          progress=config.progress, desc=f"calibrate {raw.name}")
    points = [CalibrationPoint(g.tostr(), table.raw_genotype_latency_ms(g), med, iqr) for g, (med, iqr) in zip(genos, timed)]
    return fit_composition(points, config.composition)


def build(setting: Setting, config: MeasureConfig, name: str, spaces: Sequence[str] = ("cnet", "cdnet")) -> TableData:
    """Measure every entry of a table for ``setting`` on ``config.device`` and ``config.runtime`` and return it
    (not yet saved); with ``config.calibrate`` > 0, also its composition (see the module doc)."""
    if config.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeUnavailableError("no CUDA device (torch sees none), --device cuda, expected a machine with a "
                                      "CUDA GPU or --device cpu")
    check_runtime(config.runtime, config.device, setting.dtype)
    threads = config.threads if config.device == "cpu" else None
    setting = Setting(setting.batch_size, setting.dtype, setting.resolution, setting.width_mult, setting.neck, threads)
    apply_threads(threads)
    timer = resolve_timer(config.timer, config.device, threads)
    if config.device == "cuda":
        torch.backends.cudnn.benchmark = True
    elif config.heap == "steady":
        steady_heap()
    load_before = machine_load()
    with ops.use_backend(config.backend):
        items = workload(setting, spaces, config.device, config.seed, config.runtime)
        log.info("timing %d entries x %d rounds on %s (%s)", len(items), config.repeats, config.device, config.runtime)
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
    details = {"timer": timer, "warmup": config.warmup, "repeats": config.repeats, "interleaved": True,
               "statistic": "median", "ops_backend": config.backend, "runtime_version": runtime_version(config.runtime),
               "heap": heap_state() or "default (glibc malloc thresholds as the process started)",
               "load_before": load_before, "load_after": machine_load(), "seed": config.seed}
    extra = (config.runtime,) if config.runtime in ("onnxruntime", "openvino") else ()
    prov = Provenance("measured", _now(), software_versions(extra), details, config.runtime)
    device = Device(device_name(config.device), config.device, None)
    table = TableData(name, device, prov, setting, covered_spaces(tuple(layers), setting), tuple(fixed), tuple(layers))
    if config.calibrate:
        composition = fit_table_composition(table, config, timer)
        details.update(calibration_load_after=machine_load())
        table = replace(table, composition=composition, provenance=replace(prov, details=details))
    return table


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
