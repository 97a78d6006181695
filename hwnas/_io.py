"""Atomic result files (temp file + rename): strict JSON with short lists of numbers on one line, text, figures,
torch checkpoints, and append-only JSON-lines logs.

Every writer here
- writes a temp file ``.<name>.<random>.tmp`` beside the target, flushes it to disk, then renames it over the target,
  so a reader (or a resumed run) never sees half a file; the temp file is removed on any error;
- creates files with the mode a plain ``open()`` would (``0o666 & ~umask``: 0644 under the usual umask 022), not
  the 0600 of :func:`tempfile.mkstemp`;
- writes strict JSON: a NaN or Infinity raises :class:`OutputError` naming the file and the field, because JSON has
  no such values and most readers refuse them (use ``None`` -> ``null`` for a missing number);
- turns text that cannot be encoded as UTF-8 (a file name that is not valid UTF-8, read back as surrogates) into
  :class:`OutputError` naming the file.
A writer that fails removes the folders it created for its file (:func:`make_dirs`, :func:`remove_empty_dirs`).
:func:`remove_stale_temps` deletes temp files left by a killed process; call it only while holding the folder's
run lock (:mod:`hwnas._lock`), since another live writer's temp file looks the same.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from hwnas.errors import OutputError

logger = logging.getLogger(__name__)

TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    try:  # Linux: read it without changing it (other threads may be creating files)
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        mask = os.umask(0o022)  # elsewhere reading the umask means setting it; put it straight back
        os.umask(mask)
        return mask


def file_mode() -> int:
    """Mode of a newly created file under the current umask (``0o666 & ~umask``)."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    """Mode of a newly created folder under the current umask (``0o777 & ~umask``): for a folder made with
    :func:`tempfile.mkdtemp` (0700) that is renamed to a user-visible name."""
    return 0o777 & ~_umask()


def finite_number(x: Any) -> bool:
    """Whether a value read from JSON is an int or float that is finite as a float (not a bool; an int beyond
    float's range is not: ``float(x)`` and ``math.isfinite`` would raise OverflowError)."""
    return (type(x) is float and math.isfinite(x)) or (type(x) is int and -1e308 < x < 1e308)


def find_non_finite(value: Any, path: str = "") -> str | None:
    """Where the first NaN / Infinity sits in a JSON-ready value (``"final.val_acc"``, ``"cmc[3]"``), else None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path or "(top level)")
    if isinstance(value, dict):
        for k, v in value.items():
            where = find_non_finite(v, f"{path}.{k}" if path else str(k))
            if where:
                return where
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            where = find_non_finite(v, f"{path}[{i}]")
            if where:
                return where
    return None


def finite_or_none(value: Any) -> Any:
    """``value`` with every NaN / Infinity float replaced by ``None`` (JSON ``null``): for logs of measured values."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    return value


def _check_finite(payload: Any, where: str) -> None:
    bad = find_non_finite(payload)
    if bad is not None:
        raise OutputError(f"non-finite number (NaN or Infinity) at {bad}, {where}, expected finite numbers "
                          "(JSON has no NaN/Infinity; a missing value is null)")


def dumps_json(payload: Any, indent: int = 2) -> str:
    """Like ``json.dumps(payload, indent=2, allow_nan=False)`` but lists of scalars are written inline (``[3, 5, 1]``).

    Raises :class:`OutputError` naming the field when ``payload`` holds a NaN or Infinity.
    """
    _check_finite(payload, "JSON output")

    def render(value: Any, level: int) -> str:
        pad, inner = " " * (indent * level), " " * (indent * (level + 1))
        if isinstance(value, dict) and value:
            items = [f"{inner}{json.dumps(str(k))}: {render(v, level + 1)}" for k, v in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(value, (list, tuple)) and value:
            if all(v is None or isinstance(v, (bool, int, float, str)) for v in value):
                return json.dumps(list(value), allow_nan=False)
            return "[\n" + ",\n".join(inner + render(v, level + 1) for v in value) + "\n" + pad + "]"
        return json.dumps(value, allow_nan=False)

    return render(payload, 0)


def json_line(record: Any, where: str = "JSON-lines log") -> str:
    """One strict-JSON line (no newline inside) for an append-only log; NaN / Infinity raise :class:`OutputError`."""
    _check_finite(record, where)
    return json.dumps(record, allow_nan=False)


def make_dirs(folder: str | os.PathLike) -> list[Path]:
    """``mkdir -p folder``; returns the folders it created (as absolute real paths), deepest first, for
    :func:`remove_empty_dirs`.

    Each prefix of the path is created in turn and only what ``mkdir`` really made is returned, so a path through
    ``..`` or a symbolic link (``new/../existing/run``) names the folders made (``new``, ``existing/run``), never a
    folder that was there before.
    """
    folder = Path(folder)
    made: list[Path] = []
    parts = folder.parts
    for i in range(1, len(parts) + 1):
        prefix = Path(*parts[:i])
        try:
            os.mkdir(prefix)
        except FileExistsError:
            continue
        except OSError:
            if prefix.is_dir():  # e.g. a read-only parent that already holds it
                continue
            raise
        made.append(Path(os.path.realpath(prefix)))
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)  # raises the error that explains why
    return made[::-1]


def remove_empty_dirs(folders: Iterable[Path]) -> None:
    """Remove each of ``folders`` (deepest first, as :func:`make_dirs` returns them) while it is empty; stop at the
    first that is not (or cannot be removed). A run that failed before writing anything leaves no empty folder."""
    for p in folders:
        try:
            p.rmdir()
        except OSError:
            return


def _temp_beside(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    return Path(tmp)


def _atomic(path: str | os.PathLike, write: Callable[[Path], None], mode: int | None = None) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path``, fsync it, set ``mode`` (default :func:`file_mode`),
    then rename it over ``path``. The temp file is removed on any error."""
    path = Path(path)
    made = make_dirs(path.parent)
    try:
        tmp = _temp_beside(path)
    except BaseException:
        remove_empty_dirs(made)
        raise
    try:
        write(tmp)
        with open(tmp, "rb+") as f:  # the data is on disk before the rename makes it visible
            os.fsync(f.fileno())
        os.chmod(tmp, file_mode() if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        remove_empty_dirs(made)
        raise
    return path


def _encode(text: str, path: str | os.PathLike) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as e:
        bad = e.object[e.start:e.end].encode("utf-8", "surrogateescape")
        raise OutputError(f"text is not valid UTF-8 (bytes {bad!r}, e.g. a file or folder name in another "
                          f"encoding), {os.fsdecode(path)!r}, expected UTF-8 text (rename the file or folder)"
                          ) from None


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (mode as :func:`file_mode`)."""
    data = _encode(text, path)
    return _atomic(path, lambda tmp: tmp.write_bytes(data))


def save_figure_atomic(fig: Any, path: str | os.PathLike, **savefig_kwargs: Any) -> Path:
    """``fig.savefig`` to a temp file then rename (the format comes from ``path``'s suffix)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return _atomic(path, lambda tmp: fig.savefig(tmp, format=fmt, **savefig_kwargs))


def write_json_atomic(path: str | os.PathLike, payload: Any) -> Path:
    """Write ``payload`` as strict JSON to ``path`` atomically: readers never see a half-written file.

    Raises :class:`OutputError` naming ``path`` and the field when ``payload`` holds a NaN or Infinity.
    """
    _check_finite(payload, os.fsdecode(path))
    return write_text_atomic(path, dumps_json(payload) + "\n")


def copy_file_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy ``src``'s bytes to ``dst`` atomically (temp file beside ``dst``, fsync, rename; mode as
    :func:`file_mode`): a reader of ``dst`` sees the old file or the whole new one, never half of it."""
    return _atomic(dst, lambda tmp: shutil.copyfile(src, tmp))


def save_torch_atomic(path: str | os.PathLike, payload: Any) -> Path:
    """``torch.save`` to a temp file, fsync, rename: a kill or a full disk never leaves half a checkpoint."""
    import torch

    return _atomic(path, lambda tmp: torch.save(payload, tmp))


def is_temp_file(path: Path) -> bool:
    """Whether ``path`` is named like the temp files (and generators' temp folders) of these writers."""
    return path.name.startswith(".") and path.name.endswith(TEMP_SUFFIX)


def remove_stale_temps(folder: str | os.PathLike, depth: int = 3) -> list[Path]:
    """Delete temp files (``.<name>.<random>.tmp`` and ``.<name>.tmp`` folders of generators) that a killed
    writer left in ``folder`` and its subfolders down to ``depth`` levels (a run folder's ``checkpoints/``, a
    sweep's ``w0.1/checkpoints/``). Only safe while this process holds the folder's run lock."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for p in _walk(folder, depth):
        if is_temp_file(p):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _walk(folder: Path, depth: int) -> Iterator[Path]:
    for p in list(folder.iterdir()):
        yield p
        if depth > 1 and p.is_dir() and not p.is_symlink() and not p.name.endswith(TEMP_SUFFIX):
            yield from _walk(p, depth - 1)


def read_regular(path: str | os.PathLike) -> bytes:
    """The bytes of ``path`` (symbolic links followed) if it is a regular file or a folder (which raises
    IsADirectoryError as usual); anything else (a FIFO would block the reader forever, a device might never end)
    raises ``OSError`` with strerror "not a regular file"."""
    path = Path(path)
    mode = path.stat().st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise OSError(22, "not a regular file", str(path))
    return path.read_bytes()


def read_json_cache(path: str | os.PathLike, required: Sequence[str] = (),
                    check: Callable[[dict[str, Any]], str | None] | None = None) -> dict[str, Any] | None:
    """A JSON object that an earlier run cached at ``path``, or None when there is none to use.

    A cache that cannot serve (unreadable, not UTF-8 JSON, not an object, a ``required`` key missing, a NaN, or
    a reason returned by ``check(value)``: a value out of range, another run's settings) is logged as a warning
    and also gives None, so the caller recomputes it and writes it again, as after a kill. A symbolic link is not
    a cache of this run (it points at another run's file, or anywhere): ignored the same way, and the atomic write
    of the recomputed value replaces the link, not its target.
    """
    path = Path(path)
    if path.is_symlink():
        logger.warning("ignoring the cache %s (a symbolic link, not a file this run wrote); computing it again", path)
        return None
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        logger.warning("ignoring the unreadable cache %s (%s); computing it again", path, e)
        return None
    bad = find_non_finite(value)
    if bad is not None:
        logger.warning("ignoring the cache %s (a NaN or Infinity at %s); computing it again", path, bad)
        return None
    missing = [k for k in required if k not in value] if isinstance(value, dict) else list(required) or ["{...}"]
    if missing:
        logger.warning("ignoring the cache %s (no %s); computing it again", path, ", ".join(missing))
        return None
    reason = check(value) if check is not None else None
    if reason:
        logger.warning("ignoring the cache %s (%s); computing it again", path, reason)
        return None
    return value


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line (no newline inside: :func:`json_line` gives one) to a log and flush it to disk; a kill or a
    full disk can leave at most a partial last line, which :func:`read_json_lines` drops."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_json_lines(path: str | os.PathLike) -> tuple[list[Any], int]:
    """Records of a JSON-lines log and the number of lines dropped as unreadable (a partial last line left by a
    kill or a full disk, or any other line that is not a JSON value)."""
    path = Path(path)
    if not path.is_file():
        return [], 0
    records, dropped = [], 0
    for line in path.read_bytes().split(b"\n"):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, ValueError):
            dropped += 1
    return records, dropped


def rewrite_json_lines(path: str | os.PathLike, records: Iterable[Any]) -> Path:
    """Replace a JSON-lines log atomically with ``records`` (one strict-JSON line each)."""
    where = os.fsdecode(path)
    return write_text_atomic(path, "".join(json_line(r, where) + "\n" for r in records))


def json_error_text(e: ValueError, column: bool = True) -> str:
    """``'<reason> at line L column C'`` for a :class:`json.JSONDecodeError` (whose reason may itself end in
    ``' at'``: 'Invalid control character at'), or the exception's text for another ValueError."""
    msg = getattr(e, "msg", None)
    if not isinstance(msg, str) or not hasattr(e, "lineno"):
        return str(e) or type(e).__name__
    msg = msg[:-3] if msg.endswith(" at") else msg
    return f"{msg} at line {e.lineno}" + (f" column {e.colno}" if column else "")
