"""Validation splits of the search: the alphas are trained on images held out of the weights' training split.

Two rules (DESIGN 2b.5):

- :func:`split_validation_official` — the paper's public code (GitHub solicucu/ReID,
  ``data/darts_builder.py``, ``split_train_and_val``): exactly ``per_id`` (4) validation images per identity,
  a multiple of ``per_id`` training images per identity, with images shared between the splits (or drawn
  with replacement) for identities too small to give both. The search's default.
- :func:`split_validation` — disjoint: ``min(per_id, n - 1)`` images of each identity go to validation, the
  rest to training (hwnas's rule before it followed the official code; ``SearchConfig(val_split="disjoint")``).

Items are ``(path, pid, camid)``; all randomness comes from ``generator``.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import torch

from hwnas.errors import UsageError

Item = tuple[str, int, int]
VAL_SPLITS: tuple[str, ...] = ("official", "disjoint")


def _by_pid(items: Sequence[Item]) -> dict[int, list[int]]:
    """Item indices per pid, pids in order of first appearance."""
    by_pid: dict[int, list[int]] = defaultdict(list)
    for i, (_, pid, _) in enumerate(items):
        by_pid[pid].append(i)
    return by_pid


def _check_per_id(per_id: int) -> None:
    if per_id < 1:
        raise UsageError(f"validation images per identity {per_id}, split_validation per_id, expected an integer >= 1")


def split_validation(items: Sequence[Item], per_id: int = 4, *,
                     generator: torch.Generator | None = None) -> tuple[list[Item], list[Item]]:
    """Disjoint split into (train, validation): ``per_id`` random images of each identity go to validation,
    but every identity keeps at least one training image (so both splits share the classifier's labels).
    Item order is preserved within each split.
    """
    _check_per_id(per_id)
    by_pid = _by_pid(items)
    val_idx: set[int] = set()
    for pid in sorted(by_pid):
        idx = by_pid[pid]
        take = min(per_id, len(idx) - 1)
        perm = torch.randperm(len(idx), generator=generator)[:take]
        val_idx.update(idx[j] for j in perm.tolist())
    train = [it for i, it in enumerate(items) if i not in val_idx]
    val = [it for i, it in enumerate(items) if i in val_idx]
    return train, val


def official_split_of_identity(n: int, per_id: int = 4, *,
                               generator: torch.Generator | None = None) -> tuple[list[int], list[int]]:
    """(train, validation) positions among one identity's ``n`` images under the official rule (k = ``per_id``):

    - n < k: validation = k draws with replacement; train = another k draws with replacement (so the splits
      share images and both hold exactly k);
    - otherwise r = n mod k (r = k when k divides n) random images go to validation and leave the train
      split, except when n = k, where they stay in it (all k images are shared); then k - r more validation
      images are drawn without replacement from what the train split holds.

    So validation always has exactly k images and train a multiple of k: n = 4..7 -> 4 train (n = 4: the
    same 4 images as validation; n = 5, 6, 7: 1, 2, 3 validation images only in validation, the other 3, 2,
    1 shared); n = 8 -> 4 + 4 disjoint; n = 9 -> 8 train, 1 validation-only + 3 shared.
    """
    _check_per_id(per_id)
    k = per_id
    if n < 1:
        raise UsageError(f"identity with {n} images, official_split_of_identity n, expected at least 1 image")
    if n < k:
        val = torch.randint(n, (k,), generator=generator).tolist()
        train = torch.randint(n, (k,), generator=generator).tolist()
        return train, val
    r = n % k or k
    val = torch.randperm(n, generator=generator)[:r].tolist()
    train = list(range(n))
    if r != k or n >= 2 * k:
        held_out = set(val)
        train = [i for i in train if i not in held_out]
    shared = torch.randperm(len(train), generator=generator)[:k - r].tolist()
    return train, val + [train[j] for j in shared]


def split_validation_official(items: Sequence[Item], per_id: int = 4, *,
                              generator: torch.Generator | None = None) -> tuple[list[Item], list[Item]]:
    """The paper's code's split into (train, validation), identity by identity in order of first appearance
    (see :func:`official_split_of_identity`): exactly ``per_id`` validation images per identity; the train
    split keeps each identity's images in their original order. Items may repeat across and within splits.
    """
    train: list[Item] = []
    val: list[Item] = []
    for idx in _by_pid(items).values():
        t, v = official_split_of_identity(len(idx), per_id, generator=generator)
        train += [items[idx[j]] for j in t]
        val += [items[idx[j]] for j in v]
    return train, val


def split_for_search(items: Sequence[Item], rule: str, per_id: int = 4, *,
                     generator: torch.Generator | None = None) -> tuple[list[Item], list[Item]]:
    """``rule`` 'official' (:func:`split_validation_official`) or 'disjoint' (:func:`split_validation`)."""
    if rule == "official":
        return split_validation_official(items, per_id, generator=generator)
    if rule == "disjoint":
        return split_validation(items, per_id, generator=generator)
    raise UsageError(f"validation split {rule!r}, val_split, expected one of {', '.join(VAL_SPLITS)}")
