"""Atomic search checkpoints, loaded with ``weights_only=True``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from hwnas._io import save_torch_atomic
from hwnas._resume import changed_fields
from hwnas._weights import load_failure
from hwnas.errors import CheckpointError  # noqa: F401 (re-exported)

CHECKPOINT_NAME = "last.pt"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write with a temp file + fsync + rename (mode 0644 under umask 022), so a kill never leaves a half-written
    checkpoint; temp files of a killed writer are removed when the next run takes the folder's lock."""
    return save_torch_atomic(path, payload)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a search checkpoint (``weights_only=True``); errors name the file."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint does not exist, {path}, expected a search checkpoint (run without "
                              "--resume to start one)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (torch raises many types for corrupt/foreign files)
        raise CheckpointError(f"cannot be read ({load_failure(e)}), checkpoint '{path}', expected a search "
                              "checkpoint written by hwnas search") from None
    return checked_layout(payload, f"checkpoint '{path}'")


def checked_layout(payload: Any, where: str) -> dict[str, Any]:
    """``payload`` if it has a search checkpoint's keys, with mappings where hwnas writes them; raises
    :class:`CheckpointError` naming ``where`` otherwise."""
    required = {"config", "model", "weight_opt", "alpha_opt", "state", "rng"}
    if not isinstance(payload, dict) or not required <= set(payload):
        missing = sorted(required - set(payload)) if isinstance(payload, dict) else sorted(required)
        raise CheckpointError(f"not a search checkpoint (lacks {', '.join(missing)}), {where}, expected "
                              f"the keys {', '.join(sorted(required))}")
    for key in ("config", "model", "weight_opt", "alpha_opt", "state"):
        if not isinstance(payload[key], dict):
            raise CheckpointError(f"{key} is a {type(payload[key]).__name__}, {where}, expected the "
                                  "mapping hwnas search writes")
    return payload


RESULT_NEUTRAL = frozenset({"checkpoint_every"})  # may change between sessions without changing the result


def config_mismatch(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Fields that change the result and differ between a checkpoint's config and the current one, each as
    ``name old -> new``."""
    # a field added after the checkpoint was written reads as the behaviour before it; any other missing field
    # is a difference ("seed (absent) -> 0"), not a default
    saved = {**{k: v for k, v in ADDED_LATER.items() if k not in saved and k in current}, **saved}
    return changed_fields(saved, current, ignore=RESULT_NEUTRAL)


# SearchConfig fields added after the first checkpoints, with the behaviour the search had before each: no
# warm-up, hwnas's disjoint validation split (the official one became the default later), no weight sharing,
# the genotype from the alphas
ADDED_LATER: dict[str, Any] = {"warmup_epochs": 0, "val_split": "disjoint", "share_weights": "none",
                               "derive": "alpha", "derive_samples": 200}
