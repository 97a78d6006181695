"""End-to-end check of a table: sample genotypes, time whole models, compare with the table's sums.

The models are timed in the table's own setting (batch, dtype, resolution, width, neck, CPU threads) and
interleaved round by round like :func:`hwnas.latency.measure.build`, so slow drifts in machine load hit
every architecture alike. Reported: mean absolute percentage error and Spearman rank correlation.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from scipy.stats import spearmanr

from hwnas import ops
from hwnas.latency.expected import LatencyTable
from hwnas.envinfo import device_name, machine_load, software_versions
from hwnas.errors import UsageError
from hwnas.latency.measure import TORCH_DTYPES, apply_threads, resolve_timer, summarize, time_interleaved
from hwnas.models import create_model
from hwnas.space.candidates import NUM_SEARCHABLE_LAYERS, candidates
from hwnas.space.genotype import Genotype

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArchResult:
    genotype: str
    predicted_ms: float
    measured_ms: float
    iqr_ms: float

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


def random_genotypes(space: str, n: int, seed: int = 0) -> list[Genotype]:
    """``n`` distinct genotypes, each layer's candidate uniform over the space (explicit generator)."""
    gen = torch.Generator().manual_seed(seed)
    n_cand = len(candidates(space))
    if n > n_cand ** NUM_SEARCHABLE_LAYERS:
        raise UsageError(f"{n} distinct {space} genotypes asked for, random_genotypes, expected at most "
                         f"{n_cand ** NUM_SEARCHABLE_LAYERS}")
    out: dict[Genotype, None] = {}
    while len(out) < n:
        idx = torch.randint(n_cand, (NUM_SEARCHABLE_LAYERS,), generator=gen).tolist()
        out[Genotype.from_indices(space, idx)] = None
    return list(out)


def mape_spearman(predicted: list[float], measured: list[float]) -> tuple[float, float]:
    mape = sum(abs(p - m) / m for p, m in zip(predicted, measured)) / len(measured)
    rho = float(spearmanr(predicted, measured).statistic) if len(measured) > 1 else float("nan")
    return float(mape), rho


def validate(table: LatencyTable, n_archs: int = 20, space: str = "cdnet", device: str | None = None,
             warmup: int = 5, repeats: int = 30, seed: int = 0, backend: str = "eager",
             progress: bool = True, timer: str | None = None, threads: int | None = None) -> ValidationResult:
    """Time ``n_archs`` random ``space`` genotypes end to end and compare with ``table``'s sums.

    ``timer`` defaults to the one a measured table was built with (so both sides count the same time);
    ``threads`` (CPU) to the table's thread count (a different count is allowed, with a warning: the two
    sides then time different settings).
    """
    table.require(space)
    s = table.data.setting
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        if threads is not None and s.threads is not None and threads != s.threads:
            log.warning("timing with %d CPU thread(s) but table '%s' is for %d: the error mixes two settings",
                        threads, table.name, s.threads)
        apply_threads(threads if threads is not None else s.threads)
    else:
        torch.backends.cudnn.benchmark = True
    if table.data.device.kind != device:
        log.warning("table '%s' is for a %s device but this run measures on %s: the error compares two devices",
                    table.name, table.data.device.kind, device)
    if timer is None:
        same = table.data.provenance.kind == "measured" and table.data.device.kind == device
        timer = str(table.data.provenance.details.get("timer", "auto")) if same else "auto"
    timer = resolve_timer(timer, device, torch.get_num_threads() if device == "cpu" else None)
    genos = random_genotypes(space, n_archs, seed)
    torch.manual_seed(seed)
    dev, dtype = torch.device(device), TORCH_DTYPES[s.dtype]
    x = torch.randn(s.batch_size, 3, *s.resolution, device=dev, dtype=dtype)
    calls = []
    for g in genos:
        model = create_model(space, genotype=g, width_mult=s.width_mult, neck=s.neck).to(dev, dtype).eval()
        calls.append(lambda m=model: m(x))
    load_before = machine_load()
    with ops.use_backend(backend):
        samples = time_interleaved(calls, device, warmup, repeats, progress, desc=f"validate {table.name}",
                                   timer=timer)
    archs = []
    for g, smp in zip(genos, samples):
        med, iqr = summarize(smp)
        archs.append(ArchResult(g.tostr(), table.genotype_latency_ms(g), med, iqr))
    mape, rho = mape_spearman([a.predicted_ms for a in archs], [a.measured_ms for a in archs])
    context = {"batch_size": s.batch_size, "dtype": s.dtype, "resolution": list(s.resolution),
               "width_mult": s.width_mult, "neck": s.neck, "threads": torch.get_num_threads() if device == "cpu" else None,
               "warmup": warmup, "repeats": repeats, "seed": seed, "ops_backend": backend, "timer": timer,
               "table_provenance": table.data.provenance.kind, "table_device": table.data.device.name,
               "load_before": load_before, "load_after": machine_load(), "software": software_versions()}
    return ValidationResult(table.name, space, device_name(device), mape, rho, tuple(archs), context)
