"""TensorBoard event files for ``hwnas train`` and ``hwnas search`` (optional dependency: ``hwnas[tensorboard]``).

``--tensorboard auto`` (the default) writes them when the ``tensorboard`` package is installed and otherwise
prints one note; ``--tensorboard on`` makes its absence an error; ``off`` writes none. Scalars are the numeric
fields of each epoch record (nested ones as ``eval/rank1``), at step = epoch; view them with
``tensorboard --logdir RUN/tensorboard``.
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hwnas.errors import RuntimeUnavailableError

MODES = ("auto", "on", "off")
DIRNAME = "tensorboard"
INSTALL = "pip install 'hwnas[tensorboard]'"


def add_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tensorboard", choices=MODES, default="auto",
                   help=f"TensorBoard event files in OUTPUT/{DIRNAME}: auto (when the tensorboard package is "
                        f"installed, else a note), on (required), off")


def available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def check_mode(mode: str, option: str = "--tensorboard") -> bool:
    """Whether event files will be written; ``on`` without the package is an error (checked before any work)."""
    if mode == "off":
        return False
    if available():
        return True
    if mode == "on":
        raise RuntimeUnavailableError(f"the tensorboard package is not installed, {option} on, expected "
                                      f"{INSTALL} (or {option} off)")
    return False


def absent_note() -> str:
    return f"note: no TensorBoard event files (the tensorboard package is not installed; {INSTALL} adds them)"


def scalars(record: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """(tag, value) for every finite number in ``record`` (nested dicts as ``a/b``; lists, strings, bools skipped)."""
    for key, value in record.items():
        tag = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from scalars(value, tag + "/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            yield tag, float(value)


class EpochWriter:
    """Writes one epoch record's scalars per call (``extra`` adds more tags, e.g. per-candidate alpha).

    The event file is opened at the first call with ``purge_step`` = that epoch, so a resumed run drops the
    events the interrupted session wrote for the epochs it repeats (TensorBoard's own mechanism).
    """

    def __init__(self, log_dir: str | os.PathLike,
                 extra: Callable[[dict[str, Any]], dict[str, float]] | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.extra = extra
        self.writer: Any = None

    def __call__(self, epoch: int, record: dict[str, Any]) -> None:
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.log_dir), purge_step=epoch)
        for tag, value in scalars({k: v for k, v in record.items() if k != "epoch"}):
            self.writer.add_scalar(tag, value, epoch)
        for tag, value in (self.extra(record) if self.extra else {}).items():
            self.writer.add_scalar(tag, value, epoch)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def open_writer(enabled: bool, run_dir: str | os.PathLike,
                extra: Callable[[dict[str, Any]], dict[str, float]] | None = None) -> EpochWriter | None:
    """An :class:`EpochWriter` into ``run_dir/tensorboard`` when ``enabled`` (see :func:`check_mode`), else None."""
    return EpochWriter(Path(run_dir) / DIRNAME, extra) if enabled else None
