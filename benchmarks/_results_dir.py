"""``--results-dir``: where a benchmark also copies its result files (e.g. ``benchmarks/results``).

Checked and created before the benchmark's work starts (a bad folder is refused in seconds, not after hours), and
filled with atomic copies at the end. A results folder that is the output folder itself needs no copy.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from hwnas import _cli
from hwnas._io import copy_file_atomic
from hwnas.errors import OutputError

OPTION = "--results-dir"


def prepare_results_dir(results_dir: Path | None, output: Path, names: Sequence[str]) -> Path | None:
    """Check and create ``results_dir`` for the files ``names``; returns the folder to copy into, or None (no
    ``--results-dir``, or the same folder as ``output``). Raises :class:`OutputError` (exit 2) naming the flag."""
    if results_dir is None:
        return None
    _cli.make_output_dir(results_dir, OPTION)
    return _check(results_dir, output, names)


@contextlib.contextmanager
def results_dir_for(results_dir: Path | None, output: Path, names: Sequence[str]) -> Iterator[Path | None]:
    """:func:`prepare_results_dir` for the ``with`` block around the benchmark: the folders it created are removed
    again when the block fails and leaves them empty (a failed or interrupted run leaves no empty results folder)."""
    if results_dir is None:
        yield None
        return
    with _cli.output_dir_for(results_dir, OPTION):
        yield _check(results_dir, output, names)


def _check(results_dir: Path, output: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        target = results_dir / name
        if target.is_dir():
            raise OutputError(f"a folder is in the way of a result file, {OPTION} {target}, expected a file "
                              "name that is free or a file (it is replaced)")
    if output.exists() and results_dir.resolve() == output.resolve():
        return None
    return results_dir


def copy_results(output: Path, results_dir: Path | None, names: Sequence[str]) -> None:
    """Copy ``output/name`` to ``results_dir/name`` for each name, each copy atomic (temp file, rename)."""
    if results_dir is None:
        return
    for name in names:
        copy_file_atomic(output / name, results_dir / name)
