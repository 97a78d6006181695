"""Atomic result files (temp file + rename, mode 0644): JSON with short lists of numbers on one line, text, figures."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


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


def _atomic(path: str | os.PathLike, write: Callable[[Path], None], mode: int = 0o644) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path``, set ``mode``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (mode 0644)."""
    return _atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_figure_atomic(fig: Any, path: str | os.PathLike, **savefig_kwargs: Any) -> Path:
    """``fig.savefig`` to a temp file then rename (the format comes from ``path``'s suffix; mode 0644)."""
    fmt = Path(path).suffix.lstrip(".") or "png"
    return _atomic(path, lambda tmp: fig.savefig(tmp, format=fmt, **savefig_kwargs))


def write_json_atomic(path: str | os.PathLike, payload: Any) -> Path:
    """Write ``payload`` as JSON to ``path`` atomically: readers never see a half-written file."""
    return write_text_atomic(path, dumps_json(payload) + "\n")
