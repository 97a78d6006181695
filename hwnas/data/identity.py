"""What data a run read, as a hash that a resume compares: the same for a moved copy of the same images, different
for other data (another seed of the synthetic generator, another dataset, added, removed or edited files)."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hwnas._resume import content_hash

Item = tuple[str, int, int]  # (image path, identity, camera)


def images_hash(**splits: Sequence[Item]) -> str:
    """``sha256:...`` of every split's images (file name, identity, camera, size in bytes; -1 for a file that
    cannot be read), keyed by the split names given."""
    def size(path: str) -> int:
        try:
            return os.stat(path).st_size
        except (OSError, ValueError):
            return -1

    return content_hash({name: [[Path(p).name, pid, cam, size(p)] for p, pid, cam in items]
                         for name, items in splits.items()})


__all__ = ["images_hash"]
