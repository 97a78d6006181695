"""End-to-end check of a table: sample genotypes, time whole models, compare with the table's sums.

The models are timed in the table's own setting (batch, dtype, resolution, width, neck, CPU threads), on the
runtime its entries were timed on, with the heap the table was built with, and interleaved round by round like
:func:`hwnas.latency.measure.build`, so slow drifts in machine load hit every architecture alike. Genotypes the
table's composition was calibrated on are never drawn. Reported: mean absolute percentage error (MAPE) and
Spearman rank correlation of the table's (composed) sums against the measured medians.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from scipy.stats import spearmanr

from hwnas.deploy.heap import heap_state, steady_heap
from hwnas.envinfo import device_name, machine_load, software_versions
from hwnas.latency.endtoend import check_runtime, random_genotypes, time_networks
from hwnas.latency.expected import LatencyTable
from hwnas.latency.timing import apply_threads, resolve_timer
from hwnas.space.genotype import Genotype

__all__ = ["ArchResult", "ValidationResult", "mape_spearman", "random_genotypes", "validate"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchResult:
    genotype: str
    predicted_ms: float
    measured_ms: float
    iqr_ms: float
    raw_sum_ms: float | None = None

    @property
    def error(self) -> float:
        """Relative error of the table sum against the measurement (signed)."""
        return (self.predicted_ms - self.measured_ms) / self.measured_ms


@dataclass(frozen=True)
class ValidationResult:
    """MAPE (fraction, 0.05 = 5%) and Spearman rho of table sums vs end-to-end measurements."""

    table: str
    space: str
    device: str
    mape: float
    spearman: float
    archs: tuple[ArchResult, ...]
    context: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["archs"] = [dict(asdict(a), error=a.error) for a in self.archs]
        return d


def mape_spearman(predicted: list[float], measured: list[float]) -> tuple[float, float]:
    mape = sum(abs(p - m) / m for p, m in zip(predicted, measured)) / len(measured)
    rho = float(spearmanr(predicted, measured).statistic) if len(measured) > 1 else float("nan")
    return float(mape), rho


def _same_heap(table: LatencyTable, device: str) -> None:
    """Apply the steady heap when the table was built with it (it cannot be undone within a process)."""
    if device == "cpu" and isinstance(table.data.provenance.details.get("heap"), dict):
        steady_heap()
    elif heap_state() is not None and device == "cpu":
        log.warning("this process keeps a steady heap but table '%s' was built with glibc's defaults", table.name)


def validate(table: LatencyTable, n_archs: int = 20, space: str = "cdnet", device: str | None = None,
             warmup: int = 5, repeats: int = 30, seed: int = 0, backend: str = "eager",
             progress: bool = True, timer: str | None = None, runtime: str | None = None,
             genotypes: Sequence[Genotype] | None = None, threads: int | None = None) -> ValidationResult:
    """Time ``n_archs`` random ``space`` genotypes (or the given ``genotypes``) end to end, compare with ``table``.

    ``runtime`` defaults to the one the table was timed on and ``timer`` to the one a measured table was built
    with, so both sides count the same time. Random genotypes exclude the table's calibration genotypes.
    ``threads`` (CPU) defaults to the table's thread count (a different count is allowed, with a warning: the two
    sides then time different settings).
    """
    table.require(space)
    s = table.data.setting
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    runtime = runtime or table.runtime
    check_runtime(runtime, device, s.dtype)
    if device == "cpu":
        if threads is not None and s.threads is not None and threads != s.threads:
            log.warning("timing with %d CPU thread(s) but table '%s' is for %d: the error mixes two settings",
                        threads, table.name, s.threads)
        apply_threads(threads if threads is not None else s.threads)
    else:
        torch.backends.cudnn.benchmark = True
    _same_heap(table, device)
    if table.data.device.kind != device:
        log.warning("table '%s' is for a %s device but this run measures on %s: the error compares two devices",
                    table.name, table.data.device.kind, device)
    if runtime != table.runtime:
        log.warning("table '%s' was timed on %s but this run measures on %s", table.name, table.runtime, runtime)
    if timer is None:
        same = table.data.provenance.kind == "measured" and table.data.device.kind == device
        timer = str(table.data.provenance.details.get("timer", "auto")) if same else "auto"
    timer = resolve_timer(timer, device, torch.get_num_threads() if device == "cpu" else None)
    calibration = [Genotype.fromstr(p.genotype) for p in table.data.composition.calibration]
    genos = list(genotypes) if genotypes is not None else random_genotypes(space, n_archs, seed, exclude=calibration)
    load_before = machine_load()
    timed = time_networks(genos, s, runtime, device, backend=backend, warmup=warmup, repeats=repeats, timer=timer,
                          seed=seed, progress=progress, desc=f"validate {table.name}")
    archs = tuple(ArchResult(g.tostr(), table.genotype_latency_ms(g), med, iqr, table.raw_genotype_latency_ms(g))
                  for g, (med, iqr) in zip(genos, timed))
    mape, rho = mape_spearman([a.predicted_ms for a in archs], [a.measured_ms for a in archs])
    context = {"batch_size": s.batch_size, "dtype": s.dtype, "resolution": list(s.resolution),
               "width_mult": s.width_mult, "neck": s.neck, "threads": torch.get_num_threads() if device == "cpu" else None,
               "warmup": warmup, "repeats": repeats, "seed": seed, "ops_backend": backend, "timer": timer,
               "runtime": runtime, "heap": heap_state() or "default",
               "composition": {"method": table.data.composition.method, "scale": table.data.composition.scale,
                               "offset_ms": table.data.composition.offset_ms,
                               "calibration_genotypes": len(calibration)},
               "table_provenance": table.data.provenance.kind, "table_device": table.data.device.name,
               "load_before": load_before, "load_after": machine_load(),
               "software": software_versions((runtime,) if runtime in ("onnxruntime", "openvino") else ())}
    return ValidationResult(table.name, space, device_name(device), mape, rho, archs, context)
