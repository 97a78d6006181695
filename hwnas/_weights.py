"""Load a checkpoint's weights into a model with short, specific errors instead of PyTorch's full key lists.

- Weights saved from ``DataParallel`` / ``DistributedDataParallel`` (every key starts with ``module.``) or from a
  ``torch.compile`` wrapper (``_orig_mod.``) load after the prefix is dropped; a log line says so.
- Any other mismatch raises :class:`hwnas.errors.CheckpointError` naming the cause: the counts of missing and
  unexpected keys with a few names each, or the first tensor whose shape differs (with both shapes).
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from hwnas.errors import CheckpointError

logger = logging.getLogger(__name__)

WRAPPER_PREFIXES: tuple[str, ...] = ("module.", "_orig_mod.")
_SHOWN = 3  # names listed per kind of mismatch


def strip_wrapper_prefix(state: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Drop a ``module.`` / ``_orig_mod.`` prefix carried by every key (repeatedly: DDP around compile)."""
    state = dict(state)
    changed = True
    while changed and state:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                logger.info("%s: weights saved from a wrapped model (every key starts with %r, as DataParallel, "
                            "DDP or torch.compile write them); loading them without the prefix", where, prefix)
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return state


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f", ... ({len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else "")


def load_weights(model: nn.Module, state: Any, where: str, expected: str = "weights of the same model and options"
                 ) -> None:
    """``model.load_state_dict(state)`` (strict) with the prefix handling and the short errors of the module doc.

    ``where`` names the file (``"checkpoint '/runs/x/last.pt'"``); ``expected`` says what would fit.
    """
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(f"weights are a {type(state).__name__}, {where}, expected a state dict (names -> "
                              "tensors)")
    state = strip_wrapper_prefix(state, where)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_names(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_names(unexpected)})")
        raise CheckpointError(f"weights do not fit {type(model).__name__}: {'; '.join(parts)} of {len(own)} keys, "
                              f"{where}, expected {expected}")
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"weight {name} is a {type(tensor).__name__}, {where}, expected a tensor")
        if tensor.shape != own[name].shape:
            raise CheckpointError(f"weight {name} has shape {tuple(tensor.shape)} in the checkpoint but "
                                  f"{tuple(own[name].shape)} in the model, {where}, expected {expected}")
    model.load_state_dict(state)


def load_failure(e: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in one line. PyTorch's own text suggests
    ``weights_only=False``, which would run the file's code: a file that refers to code is named as refused."""
    import re

    text = str(e)
    code = re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if code:
        return (f"it refers to Python code ({code.group(1)}), refused because loading it could run code; a checkpoint "
                "holds tensors and plain containers only")
    unpickler = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\n|$)", text, re.DOTALL)
    if unpickler:
        return f"not a PyTorch checkpoint or truncated ({unpickler.group(1).strip()[:120]})"
    first = (text.strip().splitlines() or [""])[0][:200]
    return f"{type(e).__name__}: {first}" if first else f"{type(e).__name__}: truncated or not a PyTorch checkpoint"


def load_optimizer(optimizer: torch.optim.Optimizer, state: Any, where: str) -> None:
    """``optimizer.load_state_dict`` with the parameter-group mismatch PyTorch raises as ValueError named."""
    try:
        optimizer.load_state_dict(state)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"optimizer state does not fit ({str(e).splitlines()[0][:200]}), {where}, expected "
                              "the optimizer state of the same model and settings") from None


__all__ = ["load_failure", "load_optimizer", "load_weights", "strip_wrapper_prefix"]
