"""Reading and writing latency tables by name or path.

A name is looked up first among the user's tables (what ``hwnas latency build|predict`` write by default, in
:func:`user_tables_dir`), then among the tables shipped with the package (``hwnas/latency/tables/<name>.json``).
Nothing is written into the package by default.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from hwnas._io import json_error_text, read_regular, write_json_atomic
from hwnas.latency.schema import TABLE_NAME, LatencyTableError, TableData, from_dict, to_dict

TABLES_DIR = Path(__file__).parent / "tables"
PathLike = str | os.PathLike


_NAME = TABLE_NAME  # the same rule a table's own "name" field follows


def user_tables_dir() -> Path:
    """Folder of the user's own tables: ``$HWNAS_HOME/latency-tables``, else ``$XDG_DATA_HOME/hwnas/latency-tables``,
    else ``~/.local/share/hwnas/latency-tables``."""
    home = os.environ.get("HWNAS_HOME")
    if home:
        return Path(home).expanduser() / "latency-tables"
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data).expanduser() / "hwnas" / "latency-tables"


def check_table_name(name: str, option: str = "--name") -> str:
    """A table name usable as a file name: letters, digits, ``.``, ``_``, ``-`` (no path separators)."""
    if not _NAME.match(name) or name.endswith(".json"):
        raise LatencyTableError(f"bad table name {name!r}, {option}, expected 1-64 letters, digits, '.', '_' or '-' "
                                "(no path separators, no .json suffix)")
    return name


def shipped_tables() -> list[str]:
    """Names of the tables shipped with the package."""
    return sorted(p.stem for p in TABLES_DIR.glob("*.json"))


def user_tables() -> list[str]:
    """Names of the tables in :func:`user_tables_dir` (they shadow shipped tables of the same name)."""
    folder = user_tables_dir()
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def resolve_table_path(name_or_path: PathLike) -> Path:
    """A table name (user tables first, then shipped, e.g. ``rtx2080``) or a JSON path -> the file."""
    text = os.fspath(name_or_path)
    if not text.strip():
        raise LatencyTableError(f"empty latency table name, {text!r}, expected a table name (e.g. rtx2080) or a "
                                "table JSON path")
    path = Path(text)
    looks_like_path = os.sep in text or "/" in text or text.endswith(".json")
    if looks_like_path and path.is_file():
        return path
    if _NAME.match(text):
        for folder in (user_tables_dir(), TABLES_DIR):
            candidate = folder / f"{text}.json"
            if candidate.is_file():
                return candidate
    if path.is_file():
        return path
    if path.is_dir():
        raise LatencyTableError(f"latency table path is a folder, {text}, expected a table JSON file or a table name")
    names = sorted(set(user_tables()) | set(shipped_tables()))
    raise LatencyTableError(f"no latency table {text!r}, --latency-table, expected a table name "
                            f"({', '.join(names) or 'none'}; user tables in {user_tables_dir()}) or an existing "
                            "JSON file")


def read_table(name_or_path: PathLike) -> TableData:
    """Load and validate a table; errors name the file and the bad field."""
    path = resolve_table_path(name_or_path)
    where = f"latency table '{path}'"
    try:
        text = read_regular(path).decode("utf-8")
    except OSError as e:
        raise LatencyTableError(f"cannot be read ({e.strerror or e}), {path}, expected a readable table JSON") from None
    except UnicodeDecodeError as e:
        raise LatencyTableError(f"not UTF-8 text (byte {e.start}), {path}, expected a table JSON file") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise LatencyTableError(f"not valid JSON ({json_error_text(e)}), {path}, expected a "
                                "table JSON file") from None
    except RecursionError:
        raise LatencyTableError(f"JSON nested too deeply, {path}, expected a table JSON file") from None
    except ValueError as e:
        raise LatencyTableError(f"{e}, {path}, expected finite numbers only") from None
    return from_dict(data, where)


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name}")


def save_table(table: TableData, path: PathLike) -> Path:
    """Write the table's JSON atomically (temp file + rename) and return the path."""
    return write_json_atomic(path, to_dict(table))
