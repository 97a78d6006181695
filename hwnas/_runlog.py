"""The log of one run of a command that keeps a log file in its output folder (``search.log``, ``train.log``).

Until the run is accepted (its options, data and checkpoint checked), info records are held back and only warnings
reach stderr: a refused run prints its error line alone and never opens a log file. :meth:`RunLog.accept` then logs
to stderr and to the file (appended) and replays the held records there. On exit the root logger gets back the
handlers and level it had before, and the file is closed: a later command or library call in the same process (a
test, a notebook) never writes into this run's log, and its own logging set-up is as it was.
"""
from __future__ import annotations

import contextlib
import logging
import logging.handlers
import sys
from collections.abc import Iterator
from pathlib import Path

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RunLog:
    """Held records until :meth:`accept`; made by :func:`run_log`."""

    def __init__(self, level: int) -> None:
        root = logging.getLogger()
        self._saved = (list(root.handlers), root.level)
        self._own: list[logging.Handler] = []
        self.level = level
        self.held = logging.handlers.MemoryHandler(capacity=10_000, flushLevel=logging.CRITICAL + 1)
        self.held.addFilter(lambda record: record.levelno < logging.WARNING)  # warnings are shown at once
        shown = logging.StreamHandler(sys.stderr)
        shown.setLevel(logging.WARNING)
        self._install([self.held, shown], level)

    def _install(self, handlers: list[logging.Handler], level: int) -> None:
        """The root logger's handlers become ``handlers`` (the ones replaced are detached, not closed)."""
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        formatter = logging.Formatter(LOG_FORMAT)
        for handler in handlers:
            handler.setFormatter(formatter)
            root.addHandler(handler)
        root.setLevel(level)
        self._own += handlers

    def accept(self, path: Path | None, level: int | None = None) -> None:
        """Log at ``level`` (default: the one given to :func:`run_log`) to stderr and, unless ``path`` is None (a
        process that keeps no log, e.g. a non-main rank), appended to ``path``; the held records follow."""
        held = list(self.held.buffer)
        self.held.buffer.clear()
        level = self.level if level is None else level
        handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            handlers.append(logging.FileHandler(path))
        self._install(handlers, level)
        for record in held:
            if record.levelno >= level:
                logging.getLogger(record.name).handle(record)

    def close(self) -> None:
        """Give the root logger back its handlers and level; close the handlers made here (the log file)."""
        root = logging.getLogger()
        for handler in list(root.handlers):
            root.removeHandler(handler)
        handlers, level = self._saved
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        for handler in self._own:
            handler.close()
        self._own = []


@contextlib.contextmanager
def run_log(level: int = logging.INFO) -> Iterator[RunLog]:
    """Hold info records for the duration of one command run (see the module doc); the logging set-up of the
    process is restored on exit."""
    log = RunLog(level)
    try:
        yield log
    finally:
        log.close()
