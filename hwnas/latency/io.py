"""Reading and writing latency tables: shipped tables by name (``hwnas/latency/tables/<name>.json``) or a path."""
from __future__ import annotations

import json
import os
from pathlib import Path

from hwnas.latency.schema import LatencyTableError, TableData, from_dict, to_dict
from hwnas._io import write_json_atomic

TABLES_DIR = Path(__file__).parent / "tables"
PathLike = str | os.PathLike


def shipped_tables() -> list[str]:
    """Names of the tables shipped with the package (``--latency-table NAME`` accepts each)."""
    return sorted(p.stem for p in TABLES_DIR.glob("*.json"))


def resolve_table_path(name_or_path: PathLike) -> Path:
    """A shipped name (``rtx2080``) or a JSON path -> the file; unknown names list the shipped ones."""
    text = os.fspath(name_or_path)
    if text in shipped_tables():
        return TABLES_DIR / f"{text}.json"
    path = Path(text)
    if path.is_file():
        return path
    raise LatencyTableError(
        f"latency table {text!r} is neither a shipped table ({', '.join(shipped_tables()) or 'none shipped'}) "
        f"nor an existing JSON file"
    )


def read_table(name_or_path: PathLike) -> TableData:
    """Load and validate a table; errors name the file and the bad field."""
    path = resolve_table_path(name_or_path)
    where = f"latency table '{path}'"
    try:
        text = path.read_text()
    except OSError as e:
        raise LatencyTableError(f"{where}: cannot be read ({e.strerror or e})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise LatencyTableError(f"{where}: is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    return from_dict(data, where)


def save_table(table: TableData, path: PathLike) -> Path:
    """Write the table's JSON atomically (temp file + rename) and return the path."""
    return write_json_atomic(path, to_dict(table))
