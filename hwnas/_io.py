"""Atomic JSON result files (temp file + rename), readable: short lists of numbers stay on one line."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Union


def dumps_json(payload: Any, indent: int = 2) -> str:
    """Like ``json.dumps(payload, indent=2)`` but lists of scalars are written inline (``[3, 5, 1]``)."""

    def render(value: Any, level: int) -> str:
        pad, inner = " " * (indent * level), " " * (indent * (level + 1))
        if isinstance(value, dict) and value:
            items = [f"{inner}{json.dumps(str(k))}: {render(v, level + 1)}" for k, v in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + pad + "}"
        if isinstance(value, (list, tuple)) and value:
            if all(v is None or isinstance(v, (bool, int, float, str)) for v in value):
                return json.dumps(list(value))
            return "[\n" + ",\n".join(inner + render(v, level + 1) for v in value) + "\n" + pad + "]"
        return json.dumps(value)

    return render(payload, 0)


def write_json_atomic(path: Union[str, os.PathLike], payload: Any) -> Path:
    """Write ``payload`` as JSON to ``path`` atomically: readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(dumps_json(payload) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
