"""``--export DIR``: the results of a benchmark run, without its checkpoints and datasets, in a folder small enough
to keep anywhere (a few MB for the full run), from which ``--output DIR`` continues on any machine.

Kept: the latency table and its end-to-end check, every finished search's report and genotype, the supernets'
cached scores, and every finished training's result and per-epoch metrics. Left out: the datasets (generated
again, the same bytes from the same seed), the checkpoints (an interrupted training or search starts again from
its first epoch), logs and plots. A continued run searches, scores and times nothing again when those files are
complete (tests/test_search_quality.py), and trains only what had not finished.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from hwnas._io import copy_file_atomic, is_temp_file, make_dirs
from hwnas.errors import OutputError

# relative glob patterns under the output folder (the layout of benchmarks.search_quality.run)
KEPT = ("latency_*.json", "search/*/supernet_scores.json", "search/*/p*/search_report.json",
        "search/*/p*/genotype.json", "train/*/*/standalone.json", "train/*/*/metrics.jsonl")


def kept_files(out: Path) -> Iterator[Path]:
    """The files of ``out`` that :func:`export_results` copies, relative to ``out``, sorted. A training's
    metrics are kept only beside its result (an unfinished one restarts anyway)."""
    found = set()
    for pattern in KEPT:
        for path in out.glob(pattern):
            if not path.is_file() or path.is_symlink() or is_temp_file(path):
                continue
            if path.name == "metrics.jsonl" and not (path.parent / "standalone.json").is_file():
                continue
            found.add(path.relative_to(out))
    yield from sorted(found)


def export_results(out: Path, dest: Path, option: str = "--export") -> list[Path]:
    """Copy :func:`kept_files` of the run folder ``out`` to ``dest`` (same relative paths, each copy atomic);
    returns the copied paths (relative). Raises :class:`OutputError` when ``out`` holds no run or ``dest`` is
    inside ``out``."""
    out, dest = Path(out), Path(dest)
    files = list(kept_files(out))
    if not files:
        raise OutputError(f"no benchmark results to export, --output {out}, expected the folder of a run "
                          "(its latency table, searches or trainings)")
    if dest.resolve() == out.resolve() or out.resolve() in dest.resolve().parents:
        raise OutputError(f"export folder inside the run's folder, {option} {dest}, expected a folder outside "
                          f"--output {out}")
    for rel in files:
        make_dirs((dest / rel).parent)
        copy_file_atomic(out / rel, dest / rel)
    return files
