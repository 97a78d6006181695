"""How a table's entries compose into a network's latency: ``scale * (fixed + sum of entries) + offset_ms``.

Each entry is timed alone; a network runs them back to back. What does not add up (one runtime call per
network instead of one per entry, work between blocks, a fixed share of cache and allocator effects) is
corrected by an affine map fitted on a few genotypes timed end to end while the table is built, under the
same conditions. Those calibration genotypes are stored in the table and kept apart from validation.
The map is monotone (``scale > 0``), so rankings stay those of the raw sums, and additive over entries, so
the search's expected latency under softmax(alpha) stays linear in the probabilities.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hwnas.errors import LatencyTableError, UsageError

METHODS: tuple[str, ...] = ("affine", "offset", "none")


@dataclass(frozen=True)
class CalibrationPoint:
    """One genotype timed end to end: the raw table sum and the measured median (ms, whole batch)."""

    genotype: str
    table_sum_ms: float
    measured_ms: float
    iqr_ms: float | None = None


@dataclass(frozen=True)
class Composition:
    """``latency = scale * raw_sum + offset_ms`` with the points it was fitted on (``none``: the identity)."""

    scale: float = 1.0
    offset_ms: float = 0.0
    method: str = "none"
    calibration: tuple[CalibrationPoint, ...] = ()

    def apply(self, raw_ms: float) -> float:
        return self.scale * raw_ms + self.offset_ms

    @property
    def fit_mape(self) -> float | None:
        """MAPE (fraction) of the composed sums on the calibration points themselves."""
        if not self.calibration:
            return None
        return float(np.mean([abs(self.apply(p.table_sum_ms) - p.measured_ms) / p.measured_ms
                              for p in self.calibration]))


IDENTITY = Composition()


def fit_composition(points: Sequence[CalibrationPoint], method: str = "affine") -> Composition:
    """Least squares on the *relative* error: minimise ``sum(((scale * s + offset - m) / m) ** 2)``.

    ``affine`` fits scale and offset; with fewer than 2 points, or sums that are all equal (the scale is then
    undetermined), it falls back to ``offset``, which fits the offset only (scale 1); ``none`` returns the
    identity (keeping the points for the record). Raises :class:`UsageError` for an unknown method and
    :class:`LatencyTableError` for a point whose sum or measurement is not a finite number > 0, or for a fit
    whose scale is not positive (timings that do not grow with the table's sums).
    """
    if method not in METHODS:
        raise UsageError(f"unknown composition method {method!r}, --composition, expected one of {', '.join(METHODS)}")
    pts = tuple(points)
    for i, p in enumerate(pts):
        for name in ("table_sum_ms", "measured_ms"):
            v = getattr(p, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise LatencyTableError(f"{name} {v!r} of genotype {p.genotype}, composition calibration[{i}], "
                                        "expected a finite number of ms > 0")
    if method == "none" or not pts:
        return Composition(1.0, 0.0, "none", pts)
    s = np.array([p.table_sum_ms for p in pts], dtype=float)
    m = np.array([p.measured_ms for p in pts], dtype=float)
    if method == "offset" or len(pts) < 2 or np.ptp(s) <= 1e-9 * s.max():
        w = 1.0 / m**2
        offset = float(np.sum(w * (m - s)) / np.sum(w))
        return Composition(1.0, offset, "offset", pts)
    design = np.stack([s / m, 1.0 / m], axis=1)
    (scale, offset), *_ = np.linalg.lstsq(design, np.ones_like(m), rcond=None)
    if not (math.isfinite(scale) and scale > 0 and math.isfinite(offset)):
        raise LatencyTableError(f"an affine fit with scale {scale:.4g} and offset {offset:.4g} ms, composition fitted on "
                                f"{len(pts)} calibration genotypes, expected a positive scale (measured latencies "
                                "that grow with the table's sums; re-time them on a quieter machine or use "
                                "--composition offset)")
    return Composition(float(scale), float(offset), "affine", pts)
