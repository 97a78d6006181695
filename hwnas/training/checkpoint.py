"""Atomic training checkpoints, loaded safely (``weights_only=True``) with errors that name the file."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

import hwnas
from hwnas import _weights
from hwnas._io import save_torch_atomic
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
        with _weights.quiet_warnings(where):
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for truncated / foreign files
        raise CheckpointError(f"cannot be loaded ({_weights.load_failure(e)}), {where}, expected a last.pt written "
                              "by hwnas train (tensors and plain containers only)") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"holds a {type(ckpt).__name__}, {where}, expected a dict written by hwnas train")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"lacks {', '.join(missing)}, {where}, expected an hwnas training checkpoint (keys "
                              f"{', '.join(REQUIRED_KEYS)})")
    if not isinstance(ckpt["model_options"], dict) or not isinstance(ckpt["model_name"], str):
        raise CheckpointError(f"model_name / model_options of the wrong type, {where}, expected a str and a dict")
    for key in ("model", "config", "optimizer"):
        if key in ckpt and not isinstance(ckpt[key], dict):
            raise CheckpointError(f"{key} is a {type(ckpt[key]).__name__}, {where}, expected the mapping hwnas train "
                                  "writes")
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

    A training checkpoint (``last.pt``) holds the optimiser state and the run's settings beside the weights, so
    ``model.load_state_dict(torch.load("last.pt"))`` does not work on it; this does. The model is returned in
    training mode (call ``.eval()`` for features); :func:`load_checkpoint_model` returns it ready for inference.
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
    _weights.load_weights(model, ckpt["model"], where, f"the weights of {ckpt['model_name']} {ckpt['model_options']}")
    return model.to(device), ckpt


def load_checkpoint_model(path: PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """The model of a training checkpoint (``runs/x/last.pt``) in eval mode on ``device``: ``model(images)`` with
    images (N, 3, H, W) (normalised with ImageNet mean/std, H x W the training size) returns features (N, D).

    Raises :class:`CheckpointError` naming the file when it is missing, unreadable or not an hwnas checkpoint.
    """
    model, _ = model_from_checkpoint(path, device)
    return model.eval()


def is_classifier_key(key: str) -> bool:
    """Parameters of a classifier layer (``...classifier.weight``): sized by the number of training identities."""
    return ".classifier." in f".{key}"


def load_weights(model: nn.Module, path: PathLike) -> list[str]:
    """Copy the weights of ``path`` into ``model`` to fine-tune it; returns notes on what was not copied.

    ``path``: an hwnas training checkpoint (``last.pt``) or a file holding a plain state dict
    (``torch.save(model.state_dict(), f)``), loaded with ``weights_only=True``. A classifier of another size
    (another number of identities) is left as initialised, with a note; any other missing, extra or differently
    shaped tensor is a :class:`CheckpointError` naming the file and the first tensors at fault.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file does not exist, --load-weights {path}, expected a last.pt written by "
                              "hwnas train or a saved state dict")
    try:
        with _weights.quiet_warnings(f"--load-weights {path}"):
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for truncated / foreign files
        raise CheckpointError(f"cannot be loaded ({_weights.load_failure(e)}), --load-weights {path}, expected a file "
                              "written by torch.save") from None
    source = ""
    if isinstance(payload, dict) and isinstance(payload.get("model"), dict) and "model_name" in payload:
        source = f" (a {payload['model_name']} checkpoint, options {payload.get('model_options', {})})"
        payload = payload["model"]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise CheckpointError(f"holds no state dict, --load-weights {path}, expected an hwnas training checkpoint or "
                              "a dict of tensors (model.state_dict())")
    payload = _weights.strip_wrapper_prefix(payload, f"--load-weights {path}")
    own = model.state_dict()
    notes: dict[str, str] = {}  # one per classifier module, from its first tensor (the weight)
    problems, load = [], {}
    for key, tensor in own.items():
        theirs = payload.get(key)
        if theirs is not None and theirs.shape == tensor.shape:
            load[key] = theirs
        elif is_classifier_key(key):
            got = "absent" if theirs is None else tuple(theirs.shape)
            notes.setdefault(key.rsplit(".", 1)[0], f"checkpoint {got}, model {tuple(tensor.shape)}")
        elif theirs is None:
            problems.append(f"{key} missing")
        else:
            problems.append(f"{key} {tuple(theirs.shape)} vs model {tuple(tensor.shape)}")
    extra = sorted(k for k in payload if k not in own and not is_classifier_key(k))
    problems += [f"{k} not in the model" for k in extra]
    if problems:
        more = f" and {len(problems) - 4} more" if len(problems) > 4 else ""
        name = getattr(model, "model_name", type(model).__name__)
        raise CheckpointError(f"weights do not fit {name}{source}: {'; '.join(problems[:4])}{more}, --load-weights "
                              f"{path}, expected weights of the same architecture (model, genotype, width, neck)")
    for key, tensor in load.items():  # no meta, sparse, complex or out-of-range tensors copied into the model
        _weights.check_tensor(key, tensor, own[key], f"--load-weights {path}")
    model.load_state_dict(load, strict=False)
    return [f"{module} re-initialised: {shapes}" for module, shapes in notes.items()]
