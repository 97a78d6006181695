"""Atomic search checkpoints, loaded with ``weights_only=True``."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from hwnas.errors import CheckpointError  # noqa: F401 (re-exported)

CHECKPOINT_NAME = "last.pt"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write with a temp file + rename, so a kill never leaves a half-written checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a process killed while saving
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist; nothing to resume (run without --resume)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (torch raises many types for corrupt/foreign files)
        raise CheckpointError(f"checkpoint '{path}' cannot be read: {e}") from None
    required = {"config", "model", "weight_opt", "alpha_opt", "state", "rng"}
    if not isinstance(payload, dict) or not required <= set(payload):
        raise CheckpointError(f"checkpoint '{path}' is not a search checkpoint (expected keys {sorted(required)})")
    return payload


RESULT_NEUTRAL = frozenset({"checkpoint_every"})  # may change between sessions without changing the result


def config_mismatch(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Fields that change the result and differ between a checkpoint's config and the current one."""
    def norm(v: Any) -> Any:
        return list(v) if isinstance(v, tuple) else v

    keys = sorted((set(saved) | set(current)) - RESULT_NEUTRAL)
    return [f"{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}" for k in keys
            if norm(saved.get(k)) != norm(current.get(k))]
