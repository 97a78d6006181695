"""Validation split of the search (seed supplementary): 4 images of every training identity."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch

from hwnas.errors import UsageError

Item = tuple[str, int, int]


def split_validation(items: Sequence[Item], per_id: int = 4, *,
                     generator: torch.Generator | None = None) -> tuple[list[Item], list[Item]]:
    """Split ``(path, pid, camid)`` items into (train, validation): ``per_id`` random images of each identity
    go to validation, but every identity keeps at least one training image (so both splits share the
    classifier's labels). Item order is preserved within each split; ``generator`` makes it reproducible.
    """
    if per_id < 1:
        raise UsageError(f"per_id {per_id}, split_validation, expected an integer >= 1")
    by_pid: dict[int, list[int]] = defaultdict(list)
    for i, (_, pid, _) in enumerate(items):
        by_pid[pid].append(i)
    val_idx: set[int] = set()
    for pid in sorted(by_pid):
        idx = by_pid[pid]
        take = min(per_id, len(idx) - 1)
        perm = torch.randperm(len(idx), generator=generator)[:take]
        val_idx.update(idx[j] for j in perm.tolist())
    train = [it for i, it in enumerate(items) if i not in val_idx]
    val = [it for i, it in enumerate(items) if i in val_idx]
    return train, val
