"""Atomic training checkpoints, loaded safely (``weights_only=True``) with errors that name the file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

import hwnas
from hwnas.errors import CheckpointError  # noqa: F401 (re-exported)

PathLike = str | os.PathLike
REQUIRED_KEYS = ("model", "model_name", "model_options", "epoch")


def save_checkpoint(path: PathLike, payload: dict[str, Any]) -> Path:
    """torch.save to a temporary file in the same folder, then rename: a crash never leaves a half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist, {path}, expected a last.pt written by hwnas train")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for truncated / foreign files
        raise CheckpointError(f"checkpoint '{path}' cannot be loaded ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint '{path}' holds a {type(ckpt).__name__}; expected a dict")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint '{path}' lacks {', '.join(missing)}; is it an hwnas training checkpoint?")
    return ckpt


def model_from_checkpoint(path: PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model named in a checkpoint with its options, load its weights, return (model, checkpoint)."""
    ckpt = load_checkpoint(path)
    model = hwnas.create_model(ckpt["model_name"], **ckpt["model_options"])
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint '{path}': weights do not fit {ckpt['model_name']} ({e})") from None
    return model.to(device), ckpt
