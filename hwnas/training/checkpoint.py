"""Atomic training checkpoints, loaded safely (``weights_only=True``) with errors that name the file."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

import hwnas
from hwnas._io import save_torch_atomic
from hwnas._weights import load_failure, load_weights
from hwnas.errors import CheckpointError, HwnasError  # noqa: F401 (CheckpointError re-exported)

logger = logging.getLogger(__name__)

PathLike = str | os.PathLike
REQUIRED_KEYS = ("model", "model_name", "model_options", "epoch")


def save_checkpoint(path: PathLike, payload: dict[str, Any]) -> Path:
    """torch.save to a temporary file in the same folder, fsync, then rename (mode 0644 under umask 022): a kill
    or a full disk never leaves a half file."""
    return save_torch_atomic(path, payload)


def load_checkpoint(path: PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors and plain containers only).

    Raises :class:`CheckpointError` naming the file when it is missing, unreadable, carries code (refused by
    ``weights_only=True``) or is not an hwnas training checkpoint.
    """
    path = Path(path)
    where = f"checkpoint '{path}'"
    if not path.is_file():
        what = "checkpoint path is a folder" if path.is_dir() else "checkpoint does not exist"
        raise CheckpointError(f"{what}, {path}, expected a last.pt written by hwnas train")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for truncated / foreign files
        raise CheckpointError(f"cannot be loaded ({load_failure(e)}), {where}, expected a last.pt written by hwnas "
                              "train (tensors and plain containers only)") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"holds a {type(ckpt).__name__}, {where}, expected a dict written by hwnas train")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"lacks {', '.join(missing)}, {where}, expected an hwnas training checkpoint (keys "
                              f"{', '.join(REQUIRED_KEYS)})")
    if not isinstance(ckpt["model_options"], dict) or not isinstance(ckpt["model_name"], str):
        raise CheckpointError(f"model_name / model_options of the wrong type, {where}, expected a str and a dict")
    return ckpt


def portable_options(model: nn.Module, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with a genotype given as a preset name, a file path or a Genotype replaced by its string form
    (``cdnet:3-5-1,...``, from the built model), so a checkpoint never depends on a file or the working folder."""
    options = dict(options)
    config = getattr(model, "config", None)
    if "genotype" in options and isinstance(config, dict) and isinstance(config.get("genotype"), str):
        options["genotype"] = config["genotype"]
    return options


def model_from_checkpoint(path: PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model named in a checkpoint with its options, load its weights, return (model, checkpoint).

    Weights saved from DataParallel / DDP (``module.`` prefix) load with a log note; any other mismatch raises
    :class:`CheckpointError` with the counts and a few names (:func:`hwnas._weights.load_weights`).
    """
    ckpt = load_checkpoint(path)
    where = f"checkpoint '{path}'"
    try:
        model = hwnas.create_model(ckpt["model_name"], **ckpt["model_options"])
    except HwnasError as e:
        raise CheckpointError(f"model {ckpt['model_name']} cannot be rebuilt ({e}), {where}, expected a model "
                              "this hwnas can build (a genotype given as a file path by an older hwnas must exist)"
                              ) from None
    load_weights(model, ckpt["model"], where, f"the weights of {ckpt['model_name']} {ckpt['model_options']}")
    return model.to(device), ckpt
