"""``--export DIR``: the results of a benchmark run, without its checkpoints and datasets, in a folder small enough
to keep anywhere (a few MB for the full run), from which ``--output DIR`` continues on any machine.

Kept: the latency table and its end-to-end check, every finished search's report and genotype, the supernets'
cached scores, and every finished training's result, per-epoch metrics and market-test score (``--test-set market``). Left out: the datasets (generated
again, the same bytes from the same seed), the checkpoints (an interrupted training or search starts again from
its first epoch), logs and plots. A continued run searches, scores and times nothing again when those files are
complete (tests/test_search_quality.py), and trains only what had not finished. Export once the supernets'
scores are written (right after the searches): before that, a continued run has no supernet to score with, and
the export says so.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from hwnas._io import copy_file_atomic, is_temp_file, make_dirs
from hwnas.errors import OutputError

# relative glob patterns under the output folder (the layout of benchmarks.search_quality.run)
KEPT = ("latency_*.json", "search/*/supernet_scores.json", "search/*/p*/search_report.json",
        "search/*/p*/genotype.json", "train/*/*/standalone.json", "train/*/*/metrics.jsonl",
        "train/*/*/eval-market.json")


def kept_files(out: Path) -> Iterator[Path]:
    """The files of ``out`` that :func:`export_results` copies, relative to ``out``, sorted. A training's
    metrics are kept only beside its result (an unfinished one restarts anyway)."""
    found = set()
    for pattern in KEPT:
        for path in out.glob(pattern):
            if not path.is_file() or is_temp_file(path) or _through_link(out, path):
                continue
            if path.name == "metrics.jsonl" and not (path.parent / "standalone.json").is_file():
                continue
            found.add(path.relative_to(out))
    yield from sorted(found)


def _through_link(out: Path, path: Path) -> bool:
    """Whether ``path`` (found under ``out``) is a symbolic link or lies below one: files of another folder are
    not this run's results."""
    rel = path.relative_to(out)
    return any((out / Path(*rel.parts[:i])).is_symlink() for i in range(1, len(rel.parts) + 1))


def foreign_files(dest: Path) -> list[Path]:
    """Files in ``dest`` that an export does not write (anything but :data:`KEPT` files and temp files): an
    export goes into a new or empty folder, or over an earlier export, never among other files."""
    if not dest.is_dir():
        return []
    kept = {dest / rel for pattern in KEPT for rel in (p.relative_to(dest) for p in dest.glob(pattern))}
    return sorted(p for p in dest.rglob("*") if (p.is_file() or p.is_symlink()) and p not in kept
                  and not is_temp_file(p) and p.name != ".hwnas.lock")


def missing_scores(out: Path) -> list[Path]:
    """Search folders with a finished search but no readable ``supernet_scores.json`` beside them: a run
    continued from an export of this moment cannot score genotypes (the supernets' checkpoints are not kept)."""
    import json

    missing = []
    for root in sorted(p for p in out.glob("search/*") if p.is_dir() and not _through_link(out, p)):
        if not any(root.glob("p*/search_report.json")):
            continue
        try:
            ok = isinstance(json.loads((root / "supernet_scores.json").read_text(encoding="utf-8")), dict)
        except (OSError, ValueError):
            ok = False
        if not ok:
            missing.append(root)
    return missing


def _blocking(dest: Path, rel: Path) -> Iterator[tuple[Path, str]]:
    """What in ``dest`` keeps the export from writing ``rel``: a symbolic link or a non-folder on the way, or a
    non-file (a folder, a FIFO, a link) at its place."""
    for i in range(1, len(rel.parts) + 1):
        path, last = dest / Path(*rel.parts[:i]), i == len(rel.parts)
        if path.is_symlink():
            yield path, "a symbolic link"
        elif path.exists() and (not path.is_file() if last else not path.is_dir()):
            yield path, "not a file" if last else "not a folder"


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
    blocked = next((b for rel in files for b in _blocking(dest, rel)), None)
    if blocked is not None:  # checked before copying anything: a failed export leaves the destination as it was
        raise OutputError(f"{blocked[1]} in the export folder, {option} {blocked[0]}, expected what an earlier export "
                          "wrote there, or nothing")
    other = foreign_files(dest)
    if other:
        raise OutputError(f"export folder holds other files ({other[0]}{f' and {len(other) - 1} more' if len(other) > 1 else ''}), "
                          f"{option} {dest}, expected a new or empty folder, or an earlier export")
    for rel in files:
        make_dirs((dest / rel).parent)
        copy_file_atomic(out / rel, dest / rel)
    return files
