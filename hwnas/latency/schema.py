"""Typed records of a latency lookup table and their JSON form, with validation that names the bad field.

A table holds, for one device and one setting (batch size, dtype, resolution, width multiplier, neck),
the latency in milliseconds of every searchable-layer candidate at its position and input shape, plus the
fixed parts every architecture runs (stem, the two DownSamples, the neck's inference path).

A CNet candidate ``(k1, k2)`` is the very same op as the CDNet candidate ``(k1, k2, 1)``, so entries are
keyed by ``(layer, input_shape, Candidate(k1, k2, r))`` and shared by both spaces; a table covers a space
when it has an entry for each of that space's candidates at each of the six layers.

JSON layout (``schema_version`` 1)::

    {"schema_version": 1, "name": "rtx2080",
     "device": {"name": "NVIDIA GeForce RTX 2080", "kind": "cuda", "spec": "rtx2080"},
     "provenance": {"kind": "predicted" | "measured", "date": "2026-11-25T18:00:00Z",
                    "runtime": "eager" | "cpp" | "onnxruntime" | "openvino",
                    "software": {"torch": "2.x", "python": "3.11", ...}, "details": {...}},
     "setting": {"batch_size": 128, "dtype": "fp32", "resolution": [256, 128], "width_mult": 1.0,
                 "neck": "fblneck", "threads": null},
     "spaces": ["cnet", "cdnet"],
     "fixed": [{"part": "stem", "input_shape": [3, 256, 128], "latency_ms": 1.2, "iqr_ms": 0.01}, ...],
     "layers": [{"layer": 0, "input_shape": [64, 64, 32], "out_channels": 256, "candidate": [3, 5, 1],
                 "latency_ms": 0.8, "iqr_ms": 0.01}, ...],
     "composition": {"method": "affine", "scale": 0.97, "offset_ms": -0.3,
                     "calibration": [{"genotype": "cdnet:...", "table_sum_ms": 12.1, "measured_ms": 11.5,
                                      "iqr_ms": 0.1}, ...]}}

``provenance.runtime`` is the runtime every entry was timed on (:data:`hwnas.deploy.RUNTIMES`); tables written
before it existed timed eager PyTorch modules, so a missing field reads ``eager``. ``composition`` (optional,
missing = the identity) maps the raw sum of a genotype's entries to its latency: ``scale * sum + offset_ms``,
fitted on the listed calibration genotypes timed end to end (:mod:`hwnas.latency.composition`); the search
and ``genotype_latency_ms`` use the composed values.
``iqr_ms`` is the interquartile range of the repeats (``null`` for predicted tables). Provenance
``details`` holds, for measured tables, the timer, warm-up/repeat counts and machine load; for predicted
tables, the model name, the spec sheet and the calibration parameters with their source.

What loading refuses beyond the layout (so every command that reads a table gets one clear error, never a
non-finite or silently converted number): a number that is not a JSON number (``"8"``, ``true``), an integer
too large for a float, a latency (entry, IQR) outside ``0 .. MAX_ENTRY_MS``, a calibration timing outside
``MIN_NETWORK_MS .. MAX_NETWORK_MS``, a composition scale outside ``(0, MAX_SCALE]`` or offset beyond
``+-MAX_ENTRY_MS``, a listed space whose fastest genotype (fixed parts + the fastest entry of each layer,
composed) costs less than ``MIN_NETWORK_MS`` (a table of zeros, or an offset that makes latencies negative,
cannot price anything: the search divides by the expected latency), a batch size above ``MAX_BATCH``, a side
above ``MAX_INPUT_SIDE``, a width outside what a model can be built at, ``threads`` other than null or
``1 .. MAX_THREADS``, a name that is not ``TABLE_NAME`` (one line, usable as a file name), text fields that
are not one printable line, and a space listed twice (or none).
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hwnas._limits import MAX_INPUT_SIDE
from hwnas.errors import LatencyTableError, UsageError
from hwnas.latency.composition import IDENTITY, METHODS, CalibrationPoint, Composition
from hwnas.space.candidates import NUM_SEARCHABLE_LAYERS, SPACES, Candidate, candidates
from hwnas.space.genotype import Genotype
from hwnas.space.blocks import scaled_planes
from hwnas.space.macro import macro_spec

SCHEMA_VERSION = 1
DTYPES: tuple[str, ...] = ("fp32", "fp16", "bf16")
DEVICE_KINDS: tuple[str, ...] = ("cpu", "cuda")
PROVENANCE_KINDS: tuple[str, ...] = ("measured", "predicted")
FIXED_PARTS: tuple[str, ...] = ("stem", "downsample1", "downsample2", "head")
NECKS: tuple[str, ...] = ("fblneck", "blneck", "bnneck")
RUNTIMES: tuple[str, ...] = ("eager", "cpp", "onnxruntime", "openvino")  # = hwnas.deploy.RUNTIMES (tested)

MAX_ENTRY_MS = 1e9
"""Largest latency (ms) one entry or IQR may hold (about 11.6 days); also the largest ``|offset_ms|``. With at
most 10 entries per network and a scale <= MAX_SCALE, every sum the search forms stays far inside a float."""
MAX_NETWORK_MS = 10 * MAX_ENTRY_MS
"""Largest whole-network timing (a calibration point's table sum or measurement), ms."""
MIN_NETWORK_MS = 1e-6
"""Fastest a whole network (fixed parts + six layers, composed) may be: 1 ns. A table in which some genotype
costs less (all zeros, or an offset that makes it negative) cannot price anything; the search's default
latency weight is 4 / expected latency."""
MAX_SCALE = 1e6
"""Largest composition scale (fitted scales are about 1; the bound keeps composed sums finite)."""
MAX_BATCH = 2**31 - 1
"""Largest batch size (a C int, as ``--batch-size`` allows)."""
MAX_THREADS = 4096
"""Largest CPU thread count (as ``--threads`` allows; torch.set_num_threads takes a C int)."""
MAX_TEXT = 200
"""Longest text field (device name, date, software version...), characters of one printable line."""
TABLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""A table name: 1-64 letters, digits, ``.``, ``_`` or ``-`` (no path separators: usable as a file name)."""


@dataclass(frozen=True)
class Device:
    """Where the numbers come from: a display name, ``cpu``/``cuda`` and the spec-sheet key (if any)."""

    name: str
    kind: str
    spec: str | None = None


@dataclass(frozen=True)
class Provenance:
    """``measured`` (on ``Device``, with the software versions) or ``predicted`` (model + calibration), and the
    runtime the entries were timed on (``eager`` PyTorch modules unless the table says otherwise)."""

    kind: str
    date: str
    software: Mapping[str, str] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)
    runtime: str = "eager"


@dataclass(frozen=True)
class Setting:
    """The inference setting every entry was timed (or predicted) under; ``threads`` is the CPU thread count."""

    batch_size: int
    dtype: str
    resolution: tuple[int, int]
    width_mult: float = 1.0
    neck: str = "fblneck"
    threads: int | None = None


@dataclass(frozen=True, order=True)
class LayerKey:
    """Identity of one searchable-layer op: position, input shape (C, H, W) and candidate."""

    layer: int
    input_shape: tuple[int, int, int]
    candidate: Candidate


@dataclass(frozen=True)
class LayerEntry:
    """Latency (median, ms, whole batch) of one candidate at one layer, with its interquartile range."""

    key: LayerKey
    out_channels: int
    latency_ms: float
    iqr_ms: float | None = None


@dataclass(frozen=True)
class FixedEntry:
    """Latency of a part every architecture runs: ``stem``, ``downsample1``, ``downsample2`` or ``head``."""

    part: str
    input_shape: tuple[int, ...]
    latency_ms: float
    iqr_ms: float | None = None


@dataclass(frozen=True)
class TableData:
    """A whole table: who/what/how plus the entries. Build with :func:`from_dict` to get validation."""

    name: str
    device: Device
    provenance: Provenance
    setting: Setting
    spaces: tuple[str, ...]
    fixed: tuple[FixedEntry, ...]
    layers: tuple[LayerEntry, ...]
    composition: Composition = IDENTITY


def expected_layer_keys(setting: Setting, space: str) -> list[LayerKey]:
    """Every (layer, input shape, candidate) a table for ``setting`` must hold to cover ``space``."""
    spec = macro_spec(setting.width_mult)
    keys = []
    for ls in spec.layers:
        h, w = ls.input_size(setting.resolution)
        keys.extend(LayerKey(ls.index, (ls.in_channels, h, w), c) for c in candidates(space))
    return keys


def expected_fixed_shapes(setting: Setting) -> dict[str, tuple[int, ...]]:
    """Input shape (without batch) of each fixed part; the head reads (last-stage C, H/16, W/16)."""
    spec = macro_spec(setting.width_mult)
    h, w = setting.resolution
    p = spec.planes
    return {
        "stem": (3, h, w),
        "downsample1": (p[1], h // 4, w // 4),
        "downsample2": (p[2], h // 8, w // 8),
        "head": (p[3], h // 16, w // 16),
    }


def covered_spaces(layers: tuple[LayerEntry, ...], setting: Setting) -> tuple[str, ...]:
    have = {e.key for e in layers}
    return tuple(s for s in SPACES if all(k in have for k in expected_layer_keys(setting, s)))


# ----------------------------------------------------------------------------------------------- JSON -> records
class _Reader:
    """Typed access to a JSON object; every error says where (``table 'x': setting.dtype``) and what was expected."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, path: str, what: str, expected: str | None = None) -> LatencyTableError:
        """``<what>, <table> <field>, expected <expected>``; a two-part ``"<what>; expected <x>"`` is split."""
        if expected is None:
            m = re.search(r"[;,]?\s*\bexpected\s+", what)
            if m:
                what, expected = what[:m.start()].strip(" ;,") or "bad value", what[m.end():]
            else:
                expected = "a valid table field (see hwnas.latency.schema)"
            if what.startswith("is "):
                what = f"{path.rsplit('.', 1)[-1]} {what}"
        return LatencyTableError(f"{what}, {self.where} {path}, expected {expected}")

    def obj(self, data: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(data, Mapping):
            raise self.fail(path, f"{path} is a {type(data).__name__}", "a JSON object")
        return data

    def get(self, data: Mapping[str, Any], key: str, path: str, kind: type | tuple[type, ...],
            optional: bool = False) -> Any:
        full = f"{path}.{key}" if path else key
        if key not in data or (optional and data[key] is None):
            if optional:
                return None
            raise self.fail(full, f"{full} is missing", "the field to be present")
        value = data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.fail(full, f"{full} is {_short(value)}", f"a JSON {names}")
        return value

    def ints(self, value: Any, path: str, n: int | None = None) -> tuple[int, ...]:
        ok = isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        if not ok or (n is not None and len(value) != n):
            raise self.fail(path, f"{path} is {_short(value)}", f"a list of {n if n else 'some'} integers")
        return tuple(value)

    def choice(self, value: str, path: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            raise self.fail(path, f"{path} is {_short(value)}", f"one of {', '.join(allowed)}")
        return value

    def number(self, data: Mapping[str, Any], key: str, path: str, expected: str, what: str | None = None,
               optional: bool = False) -> float | None:
        """A JSON number (int or float, never a bool or a string) as a float; ``expected`` words the range."""
        full = f"{path}.{key}" if path else key
        v = data.get(key)
        if key in data and not (optional and v is None) and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise self.fail(full, f"{full} is {_short(v)} (not a JSON number)", expected)
        v = self.get(data, key, path, (int, float), optional)
        if v is None:
            return None
        try:
            return float(v)
        except OverflowError:
            raise self.fail(full, f"{what or key} is an integer too large for a float", expected) from None

    def ms(self, data: Mapping[str, Any], key: str, path: str, optional: bool = False) -> float | None:
        expected = f"a finite number of milliseconds >= 0 (at most {MAX_ENTRY_MS:g})"
        v = self.number(data, key, path, expected, "latency entry", optional)
        if v is not None and not (math.isfinite(v) and 0 <= v <= MAX_ENTRY_MS):
            raise self.fail(f"{path}.{key}", f"latency entry is {_float_text(v)}", expected)
        return v

    def text(self, data: Mapping[str, Any], key: str, path: str, optional: bool = False) -> str | None:
        """A string of one printable line, 1..MAX_TEXT characters (what ``show`` prints on one line)."""
        v = self.get(data, key, path, str, optional)
        full = f"{path}.{key}" if path else key
        if v is not None and not (0 < len(v) <= MAX_TEXT and v.isprintable() and v.strip()):
            raise self.fail(full, f"{full} is {_short(v)}", f"one printable line of 1-{MAX_TEXT} characters "
                                                            "(no newlines or control characters)")
        return v


def _float_text(v: float) -> str:
    return {math.inf: "Infinity", -math.inf: "-Infinity"}.get(v, "NaN" if math.isnan(v) else repr(v))


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _setting(r: _Reader, d: Mapping[str, Any]) -> Setting:
    batch = r.get(d, "batch_size", "setting", int)
    if not 1 <= batch <= MAX_BATCH:
        raise r.fail("setting.batch_size", f"batch size {_short(batch)}", f"an integer from 1 to {MAX_BATCH}")
    res = r.ints(r.get(d, "resolution", "setting", list), "setting.resolution", 2)
    if min(res) < 16 or max(res) > MAX_INPUT_SIDE or res[0] % 16 or res[1] % 16:
        raise r.fail("setting.resolution", f"resolution {_short(list(res))}",
                     f"height and width multiples of 16 (>= 16, at most {MAX_INPUT_SIDE})")
    width = r.number(d, "width_mult", "setting", "a finite number > 0")
    if not (math.isfinite(width) and width > 0):
        raise r.fail("setting.width_mult", f"width_mult {width}", "a finite number > 0")
    try:
        scaled_planes(width)
    except UsageError as e:  # too wide to build, or too narrow for a CBlock's gate
        raise r.fail("setting.width_mult", f"width_mult {width:g}",
                     str(e).split(", expected ", 1)[-1]) from None
    threads = r.get(d, "threads", "setting", int, optional=True)
    if threads is not None and not 1 <= threads <= MAX_THREADS:
        raise r.fail("setting.threads", f"threads {_short(threads)}",
                     f"null or an integer from 1 to {MAX_THREADS} (CPU threads)")
    return Setting(batch, r.choice(r.get(d, "dtype", "setting", str), "setting.dtype", DTYPES),
                   (res[0], res[1]), width, r.choice(r.get(d, "neck", "setting", str), "setting.neck", NECKS), threads)


def _layer_entry(r: _Reader, d: Any, path: str, setting: Setting) -> LayerEntry:
    d = r.obj(d, path)
    layer = r.get(d, "layer", path, int)
    if not 0 <= layer < NUM_SEARCHABLE_LAYERS:
        raise r.fail(f"{path}.layer", f"layer {layer}", f"0..{NUM_SEARCHABLE_LAYERS - 1}")
    shape = r.ints(r.get(d, "input_shape", path, list), f"{path}.input_shape", 3)
    cand = r.ints(r.get(d, "candidate", path, list), f"{path}.candidate", 3)
    candidate = Candidate(*cand)
    if candidate not in candidates("cdnet"):
        raise r.fail(f"{path}.candidate", f"{list(cand)} is not a candidate op", "[k1, k2, r] from the "
                     "CDNet list (CNet's (k1, k2) is stored as [k1, k2, 1])")
    ls = macro_spec(setting.width_mult).layers[layer]
    want = (ls.in_channels, *ls.input_size(setting.resolution))
    if shape != want:
        raise r.fail(f"{path}.input_shape", f"input shape {list(shape)}",
                     f"what layer {layer} at width {setting.width_mult} and resolution {list(setting.resolution)} "
                     f"reads {list(want)}")
    out = r.get(d, "out_channels", path, int)
    if out != ls.out_channels:
        raise r.fail(f"{path}.out_channels", f"out_channels {out}", f"{ls.out_channels} (what layer {layer} writes)")
    return LayerEntry(LayerKey(layer, shape, candidate), out, r.ms(d, "latency_ms", path), r.ms(d, "iqr_ms", path, True))


def _fixed_entry(r: _Reader, d: Any, path: str, shapes: Mapping[str, tuple[int, ...]]) -> FixedEntry:
    d = r.obj(d, path)
    part = r.choice(r.get(d, "part", path, str), f"{path}.part", FIXED_PARTS)
    shape = r.ints(r.get(d, "input_shape", path, list), f"{path}.input_shape")
    if shape != shapes[part]:
        raise r.fail(f"{path}.input_shape", f"input shape {list(shape)}",
                     f"{list(shapes[part])} (what the {part} reads in this setting)")
    return FixedEntry(part, shape, r.ms(d, "latency_ms", path), r.ms(d, "iqr_ms", path, True))


def _entries(r: _Reader, data: Mapping[str, Any], setting: Setting) -> tuple[tuple[FixedEntry, ...], tuple[LayerEntry, ...]]:
    shapes = expected_fixed_shapes(setting)
    fixed = tuple(_fixed_entry(r, e, f"fixed[{i}]", shapes) for i, e in enumerate(r.get(data, "fixed", "", list)))
    parts = [e.part for e in fixed]
    for part in FIXED_PARTS:
        if parts.count(part) != 1:
            raise r.fail("fixed", f"{parts.count(part)} '{part}' entries", "exactly one")
    layers = tuple(_layer_entry(r, e, f"layers[{i}]", setting) for i, e in enumerate(r.get(data, "layers", "", list)))
    seen: set[LayerKey] = set()
    for i, e in enumerate(layers):
        if e.key in seen:
            raise r.fail(f"layers[{i}]", f"duplicate entry for layer {e.key.layer} candidate "
                         f"{list(e.key.candidate.to_list('cdnet'))}", "one entry per layer and candidate")
        seen.add(e.key)
    return fixed, layers


def from_dict(data: Any, where: str = "latency table") -> TableData:
    """Parse and validate the JSON form; raises :class:`LatencyTableError` naming the first bad field."""
    r = _Reader(where)
    data = r.obj(data, "top level")
    version = r.get(data, "schema_version", "", int)
    if version != SCHEMA_VERSION:
        raise r.fail("schema_version", f"schema version {version}", f"version {SCHEMA_VERSION} (what this hwnas reads)")
    name = r.get(data, "name", "", str)
    if not TABLE_NAME.match(name):
        raise r.fail("name", f"table name {_short(name)}", "1-64 letters, digits, '.', '_' or '-' (one line, "
                     "no path separators: usable as a file name)")
    dev = r.obj(r.get(data, "device", "", dict), "device")
    device = Device(r.text(dev, "name", "device"),
                    r.choice(r.get(dev, "kind", "device", str), "device.kind", DEVICE_KINDS),
                    r.text(dev, "spec", "device", optional=True))
    prov = r.obj(r.get(data, "provenance", "", dict), "provenance")
    software = r.get(prov, "software", "provenance", dict)
    for k in software:
        if not (isinstance(k, str) and k.isprintable() and 0 < len(k) <= MAX_TEXT):
            raise r.fail("provenance.software", f"software key {_short(k)}", "a package name on one printable line")
        r.text(software, k, "provenance.software")
    runtime = r.get(prov, "runtime", "provenance", str, optional=True) or "eager"
    provenance = Provenance(r.choice(r.get(prov, "kind", "provenance", str), "provenance.kind", PROVENANCE_KINDS),
                            r.text(prov, "date", "provenance"), dict(software),
                            dict(r.get(prov, "details", "provenance", dict)),
                            r.choice(runtime, "provenance.runtime", RUNTIMES))
    setting = _setting(r, r.obj(r.get(data, "setting", "", dict), "setting"))
    fixed, layers = _entries(r, data, setting)
    spaces = r.get(data, "spaces", "", list)
    for s in spaces:
        r.choice(s, "spaces", SPACES)
    if not spaces:
        raise r.fail("spaces", "spaces is []", f"at least one of {', '.join(SPACES)} (the spaces the table covers)")
    for s in spaces:
        if spaces.count(s) > 1:
            raise r.fail("spaces", f"space '{s}' listed {spaces.count(s)} times", "each space at most once")
    have = {e.key for e in layers}
    for s in spaces:
        missing = [k for k in expected_layer_keys(setting, s) if k not in have]
        if missing:
            k = missing[0]
            raise r.fail("layers", f"no entry for layer {k.layer} candidate {list(k.candidate.to_list('cdnet'))} "
                         f"({len(missing)} missing in all)", f"every candidate of space '{s}' (the table lists it)")
    composition = _composition(r, data.get("composition"), spaces)
    _check_fastest(r, setting, spaces, fixed, layers, composition)
    return TableData(name, device, provenance, setting, tuple(spaces), fixed, layers, composition)


def _check_fastest(r: _Reader, setting: Setting, spaces: list[str], fixed: tuple[FixedEntry, ...],
                   layers: tuple[LayerEntry, ...], comp: Composition) -> None:
    """Every genotype of every listed space must cost at least MIN_NETWORK_MS once composed (see the module doc)."""
    by_key = {e.key: e.latency_ms for e in layers}
    raw_fixed = sum(e.latency_ms for e in fixed)
    for space in spaces:
        keys, n = expected_layer_keys(setting, space), len(candidates(space))
        raw = raw_fixed + sum(min(by_key[k] for k in keys[i * n:(i + 1) * n]) for i in range(NUM_SEARCHABLE_LAYERS))
        composed = comp.apply(raw)
        if raw < MIN_NETWORK_MS:
            raise r.fail("layers", f"fastest {space} genotype sums to {raw:.6g} ms (fixed parts + the fastest entry "
                         "of each layer)", f"every genotype to cost at least {MIN_NETWORK_MS:g} ms (a table of "
                         "zeros cannot price anything)")
        if not (math.isfinite(composed) and composed >= MIN_NETWORK_MS):
            raise r.fail("composition", f"fastest {space} genotype composes to {composed:.6g} ms ({comp.scale:g} x "
                         f"raw sum {raw:.6g} ms {comp.offset_ms:+g} ms)", f"a scale and offset_ms that keep every "
                         f"latency at least {MIN_NETWORK_MS:g} ms (offset_ms >= {MIN_NETWORK_MS - comp.scale * raw:.6g})")


def _number(r: _Reader, d: Mapping[str, Any], key: str, path: str, low: float, high: float, expected: str,
            low_open: bool = False) -> float:
    """A JSON number in ``[low, high]`` (``(low, high]`` with ``low_open``); ``expected`` words the range."""
    v = r.number(d, key, path, expected)
    if not (math.isfinite(v) and (v > low if low_open else v >= low) and v <= high):
        raise r.fail(f"{path}.{key}", f"{key} {_float_text(v)}", expected)
    return v


def _composition(r: _Reader, d: Any, spaces: list[str]) -> Composition:
    if d is None:
        return IDENTITY
    d = r.obj(d, "composition")
    method = r.choice(r.get(d, "method", "composition", str), "composition.method", METHODS)
    points = []
    for i, p in enumerate(r.get(d, "calibration", "composition", list)):
        path = f"composition.calibration[{i}]"
        p = r.obj(p, path)
        geno = r.get(p, "genotype", path, str)
        try:
            Genotype.fromstr(geno)
        except ValueError as e:
            raise r.fail(f"{path}.genotype", f"genotype {geno!r} ({e})", "a genotype string such as 'cdnet:3-5-1,...'") from None
        timing = f"a finite number of ms from {MIN_NETWORK_MS:g} to {MAX_NETWORK_MS:g} (a whole network)"
        points.append(CalibrationPoint(geno, _number(r, p, "table_sum_ms", path, MIN_NETWORK_MS, MAX_NETWORK_MS, timing),
                                       _number(r, p, "measured_ms", path, MIN_NETWORK_MS, MAX_NETWORK_MS, timing),
                                       r.ms(p, "iqr_ms", path, True)))
    scale = _number(r, d, "scale", "composition", 0.0, MAX_SCALE, f"a finite number > 0 (at most {MAX_SCALE:g})",
                    low_open=True)
    offset = _number(r, d, "offset_ms", "composition", -MAX_ENTRY_MS, MAX_ENTRY_MS,
                     f"a finite number of ms from {-MAX_ENTRY_MS:g} to {MAX_ENTRY_MS:g}")
    return Composition(scale, offset, method, tuple(points))


def to_dict(table: TableData) -> dict[str, Any]:
    """The JSON form (inverse of :func:`from_dict`); layers sorted by (layer, candidate order)."""
    order = {c: i for i, c in enumerate(candidates("cdnet"))}
    s = table.setting
    return {
        "schema_version": SCHEMA_VERSION,
        "name": table.name,
        "device": {"name": table.device.name, "kind": table.device.kind, "spec": table.device.spec},
        "provenance": {"kind": table.provenance.kind, "date": table.provenance.date, "runtime": table.provenance.runtime,
                       "software": dict(table.provenance.software), "details": dict(table.provenance.details)},
        "setting": {"batch_size": s.batch_size, "dtype": s.dtype, "resolution": list(s.resolution),
                    "width_mult": s.width_mult, "neck": s.neck, "threads": s.threads},
        "spaces": list(table.spaces),
        "fixed": [{"part": e.part, "input_shape": list(e.input_shape), "latency_ms": e.latency_ms, "iqr_ms": e.iqr_ms}
                  for e in sorted(table.fixed, key=lambda e: FIXED_PARTS.index(e.part))],
        "layers": [{"layer": e.key.layer, "input_shape": list(e.key.input_shape), "out_channels": e.out_channels,
                    "candidate": e.key.candidate.to_list("cdnet"), "latency_ms": e.latency_ms, "iqr_ms": e.iqr_ms}
                   for e in sorted(table.layers, key=lambda e: (e.key.layer, order[e.key.candidate]))],
        **({} if table.composition == IDENTITY else {"composition": composition_dict(table.composition)}),
    }


def composition_dict(c: Composition) -> dict[str, Any]:
    return {"method": c.method, "scale": c.scale, "offset_ms": c.offset_ms, "fit_mape": c.fit_mape,
            "calibration": [{"genotype": p.genotype, "table_sum_ms": p.table_sum_ms, "measured_ms": p.measured_ms,
                             "iqr_ms": p.iqr_ms} for p in c.calibration]}
