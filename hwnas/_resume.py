"""What differs between the run that wrote a checkpoint and the run asked to resume it.

A resume refusal lists each differing field as ``name old -> new`` (``lr 0.065 -> 0.1``), so the user sees which
option to change back, instead of two whole configurations to compare by eye.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from hwnas.errors import CheckpointError

_MAX_SHOWN = 8


def _norm(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_norm(v) for v in value]
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _norm(v) for k, v in value.items()}
    return value


def _show(value: Any) -> str:
    text = "(absent)" if value is _ABSENT else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_ABSENT = object()


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any], ignore: Iterable[str] = (),
                   prefix: str = "") -> list[str]:
    """``["lr 0.065 -> 0.1", ...]``: every field (nested with dots) whose value differs, sorted by name."""
    skip = set(ignore)
    out = []
    for key in sorted(set(old) | set(new)):
        if key in skip:
            continue
        a, b = old.get(key, _ABSENT), new.get(key, _ABSENT)
        name = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out.extend(changed_fields(a, b, (), f"{name}."))
        elif a is _ABSENT or b is _ABSENT or _norm(a) != _norm(b):
            out.append(f"{name} {_show(a)} -> {_show(b)}")
    return out


def refuse_resume(differences: list[str], where: str, expected: str, what: str = "settings differ") -> CheckpointError:
    """The error of a resume into a run with other settings: ``<what> from the checkpoint's run (a 1 -> 2, ...),
    <where>, expected <expected>``; ``what`` names what differs with its verb (``"data differ"``)."""
    shown = ", ".join(differences[:_MAX_SHOWN])
    if len(differences) > _MAX_SHOWN:
        shown += f", ... ({len(differences) - _MAX_SHOWN} more)"
    return CheckpointError(f"{what} from the checkpoint's run ({shown}), {where}, expected {expected}")


def content_hash(payload: Any) -> str:
    """sha256 of ``payload``'s canonical JSON (sorted keys): the same content hashes the same, whatever the file
    layout or the path it was read from."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


__all__ = ["changed_fields", "content_hash", "refuse_resume"]
