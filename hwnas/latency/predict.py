"""Roofline prediction of a latency table for a device that is not at hand, and its calibration.

Every entry's module is run once on ``meta`` tensors under a dispatch mode that records each op with its
FLOPs and bytes moved (inputs + outputs, weights included). An op's time is

    t = max(FLOPs / (peak_flops * e_compute[class]), bytes / (peak_bandwidth * e_memory[class])) + launch

with op classes ``dense`` (1x1 convolutions and linear layers: GEMMs), ``spatial`` (dense convolutions with a
kernel > 1, here the stem's 7x7 on 3 channels, which libraries run far from peak), ``depthwise`` (grouped
convolutions) and ``memory`` (everything else: BN, activations, pooling, gate, add), peaks from a spec sheet
(``specs/<key>.json``) and the efficiencies + per-kernel launch overhead from a :class:`Calibration`:
either the documented prior or a least-squares fit to a measured table (:func:`calibrate`).
"""
from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import least_squares
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from hwnas._io import json_error_text
from hwnas.envinfo import software_versions
from hwnas.latency.io import _reject_constant  # NaN/Infinity -> ValueError, turned into LatencyTableError below
from hwnas.latency.measure import TORCH_DTYPES, _now, entry_modules
from hwnas.latency.schema import (
    Device,
    FixedEntry,
    LatencyTableError,
    LayerEntry,
    LayerKey,
    Provenance,
    Setting,
    TableData,
    covered_spaces,
    expected_fixed_shapes,
)

SPECS_DIR = Path(__file__).parent / "specs"
TFLOPS_RANGE = (1e-3, 1e5)
"""Peak throughputs a spec sheet may give, TFLOP/s: 1 GFLOP/s (a microcontroller) to 100 PFLOP/s (about 50x an
H100's dense fp16 peak)."""
MEM_BW_RANGE_GBS = (0.1, 1e5)
"""Memory bandwidths a spec sheet may give, GB/s: 100 MB/s to 100 TB/s (about 30x an H100's HBM3)."""
MAX_LAUNCH_US = 1e4
"""Largest per-kernel launch overhead a spec sheet may give, microseconds (10 ms; GPUs take about 5)."""
MAX_SPEC_TEXT = 200
"""Longest key or name, characters of one printable line."""
OP_CLASSES: tuple[str, ...] = ("dense", "spatial", "depthwise", "memory")
MODEL_NAME = "roofline-v1"


@dataclass(frozen=True)
class Spec:
    """A spec sheet: peak dense (matrix) and vector TFLOP/s per dtype, memory GB/s, launch-overhead prior."""

    key: str
    name: str
    kind: str
    matrix_tflops: Mapping[str, float]
    vector_tflops: Mapping[str, float]
    mem_bw_gbs: float
    launch_overhead_us: float
    sources: tuple[str, ...] = ()
    notes: str = ""

    def peak_flops(self, op_class: str, dtype: str) -> float:
        """FLOP/s for ``op_class``; fp32 dense convolutions use TF32 on GPUs that have it (PyTorch's default)."""
        if op_class in ("dense", "spatial"):
            table, want = self.matrix_tflops, ("tf32" if dtype == "fp32" and self.kind == "cuda" else dtype)
            want = want if want in table else dtype
        else:
            table, want = self.vector_tflops, (dtype if dtype in self.vector_tflops else "fp32")
        if want not in table:
            raise LatencyTableError(f"no {dtype} throughput: {self.name} does not support {dtype}, spec sheet "
                                    f"'{self.key}', expected one of {', '.join(self.matrix_tflops)}")
        return table[want] * 1e12


@dataclass(frozen=True)
class Calibration:
    """Fractions of the spec-sheet peaks reached per op class, and the per-kernel overhead (microseconds)."""

    dense_compute: float = 0.5
    dense_memory: float = 0.7
    spatial_compute: float = 0.3
    spatial_memory: float = 0.5
    depthwise_compute: float = 0.25
    depthwise_memory: float = 0.5
    memory: float = 0.75
    launch_us: float | None = None  # None: the spec sheet's prior
    source: str = "prior"

    def efficiencies(self) -> dict[str, tuple[float, float]]:
        return {"dense": (self.dense_compute, self.dense_memory),
                "spatial": (self.spatial_compute, self.spatial_memory),
                "depthwise": (self.depthwise_compute, self.depthwise_memory),
                "memory": (1.0, self.memory)}


# PRIOR: typical fractions of peak reached by cuDNN at batch >= 64: large 1x1 convolutions ~50% of the
# tensor/FMA peak, a 3-channel 7x7 convolution ~30%, depthwise 3x3 (memory bound) ~50% of bandwidth,
# element-wise kernels ~75% of bandwidth.
# These are starting points to be replaced by calibrate() on a measured table of the same GPU family.
PRIOR = Calibration()


@dataclass(frozen=True)
class OpCost:
    """One kernel: class, FLOPs (2 per multiply-accumulate) and bytes read + written."""

    op: str
    op_class: str
    flops: float
    bytes: float


def _tensors(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)


def _signature(obj: Any) -> Any:
    """A hashable description of op arguments: tensors by (shape, dtype, strides), the rest by value."""
    if isinstance(obj, torch.Tensor):
        return ("T", tuple(obj.shape), obj.dtype, obj.stride())
    if isinstance(obj, (list, tuple)):
        return tuple(_signature(o) for o in obj)
    if isinstance(obj, dict):
        return tuple((k, _signature(v)) for k, v in sorted(obj.items()))
    return repr(obj)


def _nbytes(obj: Any) -> float:
    return float(sum(t.numel() * t.element_size() for t in _tensors(obj)))


_TRACE_CACHE: dict[Any, Any] = {}


class _OpRecorder(TorchDispatchMode):
    """Records an :class:`OpCost` for every non-view op dispatched (works on meta tensors)."""

    def __init__(self, cache: dict[Any, tuple[Any, OpCost | None]] | None = None) -> None:
        super().__init__()
        self.ops: list[OpCost] = []
        # meta kernels run Python decompositions (milliseconds each); identical calls recur across candidates
        self.cache = {} if cache is None else cache

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        key = (func, _signature(args), _signature(kwargs or {}))
        hit = self.cache.get(key)
        if hit is not None:
            shapes, cost = hit
            if cost is not None:
                self.ops.append(cost)
            if shapes == "self":
                return args[0]
            if isinstance(shapes, tuple) and shapes and isinstance(shapes[0], torch.Size):
                return torch.empty(shapes[0], dtype=shapes[1], device="meta")
        n_before = len(self.ops)
        out = self._run(func, args, kwargs)
        if isinstance(out, torch.Tensor):
            cost = self.ops[-1] if len(self.ops) > n_before else None
            shapes = "self" if out is (args[0] if args else None) else (out.shape, out.dtype)
            self.cache[key] = (shapes, cost)
        return out

    def _run(self, func, args, kwargs):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if getattr(func, "is_view", False) or name in ("randn", "empty", "detach", "alias"):
            return out
        moved = _nbytes(args) + _nbytes(list((kwargs or {}).values())) + _nbytes(out)
        outputs = list(_tensors(out))
        numel = float(sum(t.numel() for t in outputs))
        if name in ("conv2d", "convolution", "_convolution") and len(args) > 1:
            w, kw = args[1], kwargs or {}
            at = 6 if name == "conv2d" else 8  # position of ``groups`` in the two schemas
            groups = int(args[at] if len(args) > at else kw.get("groups", 1))
            bias = args[2] if len(args) > 2 else kw.get("bias")
            per_out = w.shape[1] * math.prod(w.shape[2:])
            cls = "depthwise" if groups > 1 else "dense" if math.prod(w.shape[2:]) == 1 else "spatial"
            self.ops.append(OpCost(name, cls, 2.0 * numel * per_out + (numel if bias is not None else 0), moved))
        elif name in ("linear", "addmm", "mm", "matmul"):
            k = args[1].shape[-1] if name in ("linear", "addmm") else args[0].shape[-1]  # reduction length
            self.ops.append(OpCost(name, "dense", 2.0 * numel * k, moved))
        else:
            self.ops.append(OpCost(name, "memory", numel, moved))
        return out


def trace_ops(module: nn.Module, input_shapes: Sequence[Sequence[int]], dtype: str = "fp32") -> list[OpCost]:
    """The kernels an eval-mode forward of ``module`` runs on inputs of ``input_shapes`` (no compute: meta)."""
    tdtype = TORCH_DTYPES[dtype]
    module = module.to(device="meta", dtype=tdtype).eval()
    inputs = [torch.empty(tuple(s), device="meta", dtype=tdtype) for s in input_shapes]
    rec = _OpRecorder(_TRACE_CACHE)
    with torch.inference_mode(), rec:
        module(*inputs)
    return rec.ops


def op_time_ms(op: OpCost, spec: Spec, cal: Calibration, dtype: str) -> float:
    e_c, e_m = cal.efficiencies()[op.op_class]
    t_compute = op.flops / (spec.peak_flops(op.op_class, dtype) * e_c)
    t_memory = op.bytes / (spec.mem_bw_gbs * 1e9 * e_m)
    launch = spec.launch_overhead_us if cal.launch_us is None else cal.launch_us
    return (max(t_compute, t_memory) + launch * 1e-6) * 1e3


def ops_time_ms(ops: Sequence[OpCost], spec: Spec, cal: Calibration, dtype: str) -> float:
    return float(sum(op_time_ms(op, spec, cal, dtype) for op in ops))


def traced_entries(setting: Setting, spaces: Sequence[str] = ("cnet", "cdnet")
                   ) -> list[tuple[LayerKey | str, int, list[OpCost]]]:
    """(key or fixed part, out channels, kernels) for every entry of a table in ``setting``."""
    return [(key, out, trace_ops(m, shapes, setting.dtype)) for key, out, m, shapes in entry_modules(setting, spaces)]


def list_specs() -> list[str]:
    return sorted(p.stem for p in SPECS_DIR.glob("*.json"))


def load_spec(name_or_path: str | os.PathLike) -> Spec:
    """A shipped spec-sheet key (``h100``) or a JSON path -> :class:`Spec`; errors name the file and field.

    Refused: a missing field, a number that is not a JSON number (``"320"``, ``true``) or is too large for a
    float, a throughput outside :data:`TFLOPS_RANGE`, a bandwidth outside :data:`MEM_BW_RANGE_GBS`, a launch
    overhead outside ``0 .. MAX_LAUNCH_US``, no fp32 vector peak, a kind other than cpu|cuda, a key or name that
    is not one printable line, and sources/notes that are not strings.
    """
    text = os.fspath(name_or_path)
    path = SPECS_DIR / f"{text}.json" if text in list_specs() else Path(text)
    if not path.is_file():
        raise LatencyTableError(f"no spec sheet {text!r}, --spec, expected a shipped one "
                                f"({', '.join(list_specs())}) or a JSON file")
    where = f"spec sheet '{path}'"
    try:
        d = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except OSError as e:
        raise LatencyTableError(f"cannot be read ({e.strerror or e}), {where}, expected a readable spec-sheet "
                                "JSON file") from None
    except UnicodeDecodeError as e:
        raise LatencyTableError(f"not UTF-8 text (byte {e.start}), {where}, expected a spec-sheet JSON file") from None
    except RecursionError:
        raise LatencyTableError(f"JSON nested too deeply, {where}, expected a spec-sheet JSON file") from None
    except json.JSONDecodeError as e:
        raise LatencyTableError(f"not valid JSON ({json_error_text(e, column=False)}), {where}, expected a "
                                "spec-sheet JSON file") from None
    except ValueError as e:  # NaN/Infinity constants, integers with too many digits
        raise LatencyTableError(f"{str(e)[:120]}, {where}, expected finite numbers only") from None
    return _spec_from_dict(d, where)


def _spec_from_dict(d: Any, where: str) -> Spec:
    def fail(field: str, what: str, expected: str) -> LatencyTableError:
        return LatencyTableError(f"{what}, {where} {field}, expected {expected}")

    if not isinstance(d, dict):
        raise fail("top level", f"top level is a {type(d).__name__}", "a JSON object")
    for key in ("key", "name", "kind", "matrix_tflops", "vector_tflops", "mem_bw_gbs", "launch_overhead_us"):
        if key not in d:
            raise LatencyTableError(f"field {key!r} is missing, {where}, expected every field of "
                                    "hwnas.latency.predict.Spec")

    def line(field: str) -> str:
        v = d[field]
        if not (isinstance(v, str) and 0 < len(v) <= MAX_SPEC_TEXT and v.isprintable() and v.strip()):
            raise fail(field, f"{field} is {_short(v)}", f"one printable line of 1-{MAX_SPEC_TEXT} characters")
        return v

    def number(value: Any, field: str, low: float, high: float, expected: str, low_open: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail(field, f"{field} is {_short(value)} (not a JSON number)", expected)
        try:
            v = float(value)
        except OverflowError:
            raise fail(field, f"{field} is an integer too large for a float", expected) from None
        if not (math.isfinite(v) and (v > low if low_open else v >= low) and v <= high):
            raise fail(field, f"{field} {v!r}", expected)
        return v

    def peaks(field: str) -> dict[str, float]:
        table = d[field]
        if not (isinstance(table, dict) and table):
            raise fail(field, f"{field} is {_short(table)}", "a JSON object of TFLOP/s per dtype, like {\"fp32\": 8.1}")
        lo, hi = TFLOPS_RANGE
        out = {}
        for dtype, value in table.items():
            if not (0 < len(dtype) <= 16 and dtype.isprintable()):
                raise fail(field, f"dtype key {_short(dtype)}", "a dtype name such as fp32, tf32, fp16, bf16")
            out[dtype] = number(value, f"{field}.{dtype}", lo, hi, f"a peak in TFLOP/s from {lo:g} to {hi:g}")
        return out

    key, name = line("key"), line("name")
    kind = d["kind"]
    if kind not in ("cpu", "cuda"):
        raise fail("kind", f"kind {_short(kind)}", "cpu or cuda")
    matrix, vector = peaks("matrix_tflops"), peaks("vector_tflops")
    if "fp32" not in vector:
        raise fail("vector_tflops", f"no fp32 entry in vector_tflops ({', '.join(vector)})",
                   "an fp32 vector peak (what element-wise kernels fall back to)")
    bw_lo, bw_hi = MEM_BW_RANGE_GBS
    bw = number(d["mem_bw_gbs"], "mem_bw_gbs", bw_lo, bw_hi, f"a bandwidth in GB/s from {bw_lo:g} to {bw_hi:g}")
    launch = number(d["launch_overhead_us"], "launch_overhead_us", 0.0, MAX_LAUNCH_US,
                    f"microseconds per kernel from 0 to {MAX_LAUNCH_US:g}")
    sources = d.get("sources", [])
    if not (isinstance(sources, list) and all(isinstance(u, str) for u in sources)):
        raise fail("sources", f"sources is {_short(sources)}", "a list of strings (URLs)")
    notes = d.get("notes", "")
    if not isinstance(notes, str):
        raise fail("notes", f"notes is {_short(notes)}", "a string")
    return Spec(key, name, kind, matrix, vector, bw, launch, tuple(sources), notes)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def predict_table(spec: Spec, setting: Setting, name: str, calibration: Calibration = PRIOR,
                  spaces: Sequence[str] = ("cnet", "cdnet")) -> TableData:
    """A ``predicted`` table for ``spec`` in ``setting``; the provenance records the model and calibration."""
    cal = calibration if calibration.launch_us is not None else replace(calibration, launch_us=spec.launch_overhead_us)
    setting = replace(setting, threads=setting.threads if spec.kind == "cpu" else None)
    shapes = expected_fixed_shapes(setting)
    fixed, layers = [], []
    for key, out, ops in traced_entries(setting, spaces):
        ms = round(ops_time_ms(ops, spec, cal, setting.dtype), 6)
        if isinstance(key, str):
            fixed.append(FixedEntry(key, shapes[key], ms, None))
        else:
            layers.append(LayerEntry(key, out, ms, None))
    details = {"model": MODEL_NAME, "spec": spec.key, "spec_sources": list(spec.sources),
               "calibration": asdict(cal)}
    prov = Provenance("predicted", _now(), software_versions(), details)
    return TableData(name, Device(spec.name, spec.kind, spec.key), prov, setting,
                     covered_spaces(tuple(layers), setting), tuple(fixed), tuple(layers))


_PARAMS = ("dense_compute", "dense_memory", "spatial_compute", "spatial_memory", "depthwise_compute",
           "depthwise_memory", "memory")


@dataclass(frozen=True)
class CalibrationFit:
    """A fitted calibration and how well the model then reproduces the measured entries (relative errors)."""

    calibration: Calibration
    entries: int
    mape: float
    max_abs_error: float
    errors: Mapping[str, float] = field(default_factory=dict)


class _VectorModel:
    """:func:`ops_time_ms` for many entries at once (numpy), so the least-squares fit is fast."""

    def __init__(self, entries: Sequence[Sequence[OpCost]], spec: Spec, dtype: str) -> None:
        ops = [op for e in entries for op in e]
        self.owner = np.repeat(np.arange(len(entries)), [len(e) for e in entries])
        self.n = len(entries)
        self.cls = np.array([OP_CLASSES.index(o.op_class) for o in ops])
        self.flops = np.array([o.flops for o in ops])
        self.bytes = np.array([o.bytes for o in ops])
        self.peak = np.array([spec.peak_flops(c, dtype) for c in OP_CLASSES])
        self.bw = spec.mem_bw_gbs * 1e9

    def __call__(self, cal: Calibration) -> np.ndarray:
        eff = cal.efficiencies()
        e_c = np.array([eff[c][0] for c in OP_CLASSES])[self.cls]
        e_m = np.array([eff[c][1] for c in OP_CLASSES])[self.cls]
        t = np.maximum(self.flops / (self.peak[self.cls] * e_c), self.bytes / (self.bw * e_m)) + cal.launch_us * 1e-6
        return np.bincount(self.owner, weights=t * 1e3, minlength=self.n)


def _entry_name(key: LayerKey | str) -> str:
    return key if isinstance(key, str) else f"layer{key.layer}:{key.candidate.tostr('cdnet')}"


def calibrate(measured: TableData, spec: Spec, start: Calibration = PRIOR) -> CalibrationFit:
    """Fit the efficiencies and launch overhead so the model reproduces ``measured``'s entries (log least squares).

    Efficiencies are bounded to [0.001, 20]: above 1 means the device beats the spec sheet (on CPUs small
    working sets stay in cache, so the "memory" bandwidth then exceeds the DRAM figure).
    """
    if measured.provenance.kind != "measured":
        raise LatencyTableError(f"table '{measured.name}' is {measured.provenance.kind}, --calibrate-on, expected a "
                                "measured table (calibrate on a measured one)")
    values = {e.part: e.latency_ms for e in measured.fixed} | {e.key: e.latency_ms for e in measured.layers}
    traced = traced_entries(measured.setting, measured.spaces or ("cnet",))
    traced = [(k, ops) for k, _, ops in traced if k in values]
    zero = [k for k, _ in traced if not values[k] > 0]
    if zero:  # the fit is on log latencies: a 0 ms entry has none
        raise LatencyTableError(f"{len(zero)} entries of 0 ms (first {_entry_name(zero[0])}), latency table "
                                f"'{measured.name}' to calibrate on, expected measured latencies > 0 ms for every "
                                "entry (the roofline is fitted on log latencies)")
    target = np.log([values[k] for k, _ in traced])
    model = _VectorModel([ops for _, ops in traced], spec, measured.setting.dtype)

    def unpack(x: np.ndarray) -> Calibration:
        n = len(_PARAMS)
        return Calibration(*(float(v) for v in np.exp(x[:n])), launch_us=float(x[n]), source=measured.name)

    def residuals(x: np.ndarray) -> np.ndarray:
        return np.log(model(unpack(x))) - target

    launch0 = spec.launch_overhead_us if start.launch_us is None else start.launch_us
    x0 = np.array([math.log(getattr(start, p)) for p in _PARAMS] + [launch0])
    lo = np.array([math.log(1e-3)] * len(_PARAMS) + [0.0])
    hi = np.array([math.log(20.0)] * len(_PARAMS) + [1000.0])
    try:
        with np.errstate(all="ignore"):
            sol = least_squares(residuals, np.clip(x0, lo, hi), bounds=(lo, hi), x_scale="jac")
    except ValueError as e:  # e.g. residuals not finite at the start point
        raise LatencyTableError(f"no roofline fit ({str(e)[:120]}), latency table '{measured.name}' on spec sheet "
                                f"'{spec.key}', expected entries the model can fit (finite, > 0 ms)") from None
    cal = unpack(sol.x)
    rel = np.expm1(residuals(sol.x))
    if not (np.all(np.isfinite(sol.x)) and np.all(np.isfinite(rel))):
        raise LatencyTableError(f"the roofline fit diverged, latency table '{measured.name}' on spec sheet "
                                f"'{spec.key}', expected entries the model can fit (finite, > 0 ms)")
    errors = {_entry_name(k): float(r) for (k, _), r in zip(traced, rel)}
    return CalibrationFit(cal, len(traced), float(np.mean(np.abs(rel))), float(np.max(np.abs(rel))), errors)
