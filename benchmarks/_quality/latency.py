"""The benchmark's CPU latency table (built on this machine, outside the package) and its end-to-end check.

The table is measured by :func:`hwnas.latency.measure.build`, the function behind
``python -m hwnas.latency build``, in the proxy's own setting (the width and input size the architectures are
trained at), so latency and mAP describe the same networks. The check times every benchmarked genotype as a
whole model in that setting, interleaved round by round like ``hwnas.latency validate``, and compares the
table's sums with the measured medians (MAPE, Spearman).
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Sequence

import torch

from hwnas import create_model
from hwnas._io import read_json_cache, write_json_atomic
from hwnas.envinfo import device_name, machine_load
from hwnas.errors import UsageError
from hwnas.latency import load_table
from hwnas.latency.expected import LatencyTable
from hwnas.latency.io import save_table
from hwnas.latency.measure import MeasureConfig, apply_threads, build, resolve_timer, summarize, time_interleaved
from hwnas.latency.schema import Setting
from hwnas.latency.validate import mape_spearman
from hwnas.space.genotype import Genotype

logger = logging.getLogger(__name__)


def build_command(path: Path, setting: Setting, repeats: int) -> str:
    """The CLI command that builds the same table by hand."""
    h, w = setting.resolution
    return (f"python -m hwnas.latency build --device cpu --space cdnet --batch-size {setting.batch_size} "
            f"--input-size {h}x{w} --width-mult {setting.width_mult} --neck {setting.neck} --threads 1 "
            f"--repeats {repeats} --calibrate 0 --name {path.stem} --output {path.parent}")


SETTING_FIELDS = ("batch_size", "dtype", "resolution", "width_mult", "neck")


def check_table(table: LatencyTable, setting: Setting, repeats: int, where: str) -> LatencyTable:
    """Refuse a table timed in another setting than the proxy's (batch, dtype, input size, width, neck): its
    milliseconds would describe other networks than the ones trained. Raises :class:`UsageError` (exit 2)."""
    have = table.data.setting
    diffs = [f"{f} {_plain(getattr(have, f))} instead of {_plain(getattr(setting, f))}" for f in SETTING_FIELDS
             if _plain(getattr(have, f)) != _plain(getattr(setting, f))]
    if diffs:
        raise UsageError(f"latency table for another setting ({'; '.join(diffs)}), {where}, expected a table of the "
                         f"proxy's setting, e.g. {build_command(Path('tables/latency_cpu_proxy.json'), setting, repeats)}"
                         " (or no --latency-table: one is measured)")
    return table


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, list)) else value


def ensure_table(path: Path, setting: Setting, repeats: int, progress: bool) -> LatencyTable:
    """Load the table at ``path`` (checked against ``setting``), or measure it on this CPU (1 thread) and write it
    there first."""
    if not path.is_file():
        logger.info("building the CPU latency table %s (%s)", path, build_command(path, setting, repeats))
        config = MeasureConfig(device="cpu", warmup=min(5, repeats), repeats=repeats, threads=1, progress=progress)
        save_table(build(setting, config, path.stem, ("cdnet",)), path)
    return check_table(load_table(path, space="cdnet"), setting, repeats, f"latency table {path}")


def check_end_to_end(table: LatencyTable, genotypes: Sequence[Genotype], repeats: int = 10,
                     progress: bool = False) -> dict[str, Any]:
    """Time each genotype's whole model in the table's setting; table sum vs measured median per genotype."""
    s = table.data.setting
    apply_threads(s.threads)
    timer = resolve_timer(str(table.data.provenance.details.get("timer", "auto")), "cpu", torch.get_num_threads())
    torch.manual_seed(0)
    x = torch.randn(s.batch_size, 3, *s.resolution)
    calls = []
    for g in genotypes:
        model = create_model(g.space, genotype=g, width_mult=s.width_mult, neck=s.neck).eval()
        calls.append(lambda m=model: m(x))
    load_before = machine_load()
    samples = time_interleaved(calls, "cpu", 3, repeats, progress, desc="end-to-end latency", timer=timer)
    rows = []
    for g, smp in zip(genotypes, samples):
        med, iqr = summarize(smp)
        rows.append({"genotype": g.tostr(), "table_ms": table.genotype_latency_ms(g), "measured_ms": med,
                     "iqr_ms": iqr})
    mape, rho = mape_spearman([r["table_ms"] for r in rows], [r["measured_ms"] for r in rows])
    return {"mape": mape, "spearman": rho, "timer": timer, "repeats": repeats, "load_before": load_before,
            "load_after": machine_load(), "archs": rows}


LATENCY_CHECK = "latency_check.json"


def cached_check(out: Path, table_path: Path, table: LatencyTable, genotypes: Sequence[Genotype], repeats: int,
                 progress: bool) -> dict[str, Any]:
    """The end-to-end check of the table (:func:`check_end_to_end`), cached in ``out/latency_check.json``: reused
    when it timed these genotypes against this very table file (its SHA-256) with ``repeats`` on the CPU the
    table was built on, so a run continued later, loaded or on another machine, keeps the check of the table on its
    own machine; otherwise timed here (the report then names the machine)."""
    key = {"table_sha256": hashlib.sha256(table_path.read_bytes()).hexdigest(), "repeats": repeats}
    cached = read_json_cache(out / LATENCY_CHECK, ("archs", "mape", "spearman"))
    if cached is not None and all(cached.get(k) == v for k, v in key.items()) \
            and cached.get("device") == table.data.device.name and isinstance(cached["archs"], list) \
            and sorted(a.get("genotype") for a in cached["archs"] if isinstance(a, dict)) == \
            sorted(g.tostr() for g in genotypes):
        return cached
    result = {**check_end_to_end(table, genotypes, repeats, progress), **key,
              "device": device_name("cpu")}
    write_json_atomic(out / LATENCY_CHECK, result)
    return result
