"""One run per output folder: an exclusive lock file, and new unique run folders for default outputs.

:func:`run_lock` holds ``<folder>/.hwnas.lock`` with ``fcntl.flock`` for as long as a run writes into the folder.
A second run into the same folder is refused with :class:`OutputError` naming the folder and the holder's PID.
The operating system drops a flock when its process exits, however it exits (``kill -9`` included), so a lock
left by a dead process never blocks: its file stays behind but the next run takes it at once. Where ``fcntl`` is
missing (Windows) the file is created exclusively and holds the PID; a PID that no longer runs is a stale lock
and is taken over.

:func:`new_run_dir` claims ``runs/<prefix>-<timestamp>`` with ``mkdir`` (atomic), adding ``-2``, ``-3``, ... when
another run started in the same second, so two default runs never share a folder.

A folder that this process created (by :func:`run_lock` or :func:`new_run_dir`, parents included) and that is
still empty when its lock is released is removed again: a run refused before writing anything (bad data, a
refused resume) leaves no empty folder behind.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from hwnas._io import make_dirs, remove_empty_dirs, remove_stale_temps
from hwnas.errors import OutputError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

LOCK_NAME = ".hwnas.lock"


def lock_path(folder: str | os.PathLike) -> Path:
    return Path(folder) / LOCK_NAME


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return "another process"
    return f"pid {text[0]} on {text[1]}" if len(text) >= 2 else "another process"


def _refuse(folder: Path, path: Path) -> OutputError:
    return OutputError(f"output folder is in use by another run ({_holder(path)}), {folder}, expected a folder no "
                       "other hwnas run is writing (wait for it to finish, or choose another --output)")


_HELD: dict[str, int] = {}  # folders this process holds -> nesting depth (the lock is re-entrant per process)
_MADE: dict[str, list[Path]] = {}  # folder -> the folders this process created for it, deepest first


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, clean_temps: bool = True) -> Iterator[Path]:
    """Hold the run lock of ``folder`` (created if needed, and removed again if it is left empty) for the ``with``
    block; see the module doc.

    Re-entrant within one process (a library call inside a command that already holds it). On taking the lock,
    ``clean_temps`` removes temp files a killed writer left in the folder (:func:`hwnas._io.remove_stale_temps`).
    """
    folder = Path(folder)
    made = make_dirs(folder)
    key = str(folder.resolve())
    made += _MADE.pop(key, [])
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield lock_path(folder)
        finally:
            _HELD[key] -= 1
        return
    try:
        with _exclusive(folder, lock_path(folder)) as path:
            _HELD[key] = 1
            try:
                if clean_temps:
                    for stale in remove_stale_temps(folder):
                        logger.info("removed %s, left by an interrupted run", stale)
                yield path
            finally:
                del _HELD[key]
    finally:
        remove_empty_dirs(made)  # a folder made for a run that wrote nothing (its lock file is gone by now)


@contextlib.contextmanager
def _exclusive(folder: Path, path: Path) -> Iterator[Path]:
    if fcntl is None:
        with _pid_lock(folder, path):
            yield path
        return
    while True:
        folder.mkdir(parents=True, exist_ok=True)  # another process may have just removed it, empty (see run_lock)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise _refuse(folder, path) from None
            raise
        # the previous holder may have unlinked the file between our open and our flock: lock the current file
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
        yield path
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # still holding the flock: nobody can take the file we remove
        os.close(fd)


@contextlib.contextmanager
def _pid_lock(folder: Path, path: Path) -> Iterator[None]:  # pragma: no cover - Windows only
    for _ in range(2):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            break
        except FileExistsError:
            if _pid_alive(path):
                raise _refuse(folder, path) from None
            logger.warning("removing the stale lock %s (%s no longer runs)", path, _holder(path))
            path.unlink(missing_ok=True)
    else:
        raise _refuse(folder, path)
    try:
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        os.close(fd)
        yield
    finally:
        path.unlink(missing_ok=True)


def _pid_alive(path: Path) -> bool:  # pragma: no cover - Windows only
    try:
        pid = int(path.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return False
    return True


def new_run_dir(prefix: str, parent: str | os.PathLike = "runs") -> Path:
    """Create and return a new ``<parent>/<prefix>-<YYYYmmdd-HHMMSS>[-N]`` folder that no other run has."""
    parent = Path(parent)
    made = make_dirs(parent)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 10_000):
        path = parent / (f"{prefix}-{stamp}" if n == 1 else f"{prefix}-{stamp}-{n}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        _MADE[str(path.resolve())] = [path.resolve(), *made]  # removed again by run_lock if the run writes nothing
        return path
    raise OutputError(f"no free run folder name, {parent / (prefix + '-' + stamp)}, expected fewer than 10000 runs "
                      "started in one second")


def is_lock_file(path: Path) -> bool:
    return path.name == LOCK_NAME


__all__ = ["LOCK_NAME", "is_lock_file", "lock_path", "new_run_dir", "run_lock"]
