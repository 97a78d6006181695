"""Batches for the search, addressable by (epoch, index) so a resumed or distributed run sees exactly the
batches of an uninterrupted one.

Every random draw (the P x K order of an epoch, each image's augmentation) is seeded from
``(seed, stream, epoch[, batch, position])``; nothing depends on how many batches were drawn before, on
thread scheduling or on the process. Images are decoded on a small thread pool.
"""
from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import torch

from hwnas.data.identity import images_hash
from hwnas.data.loaders import read_image
from hwnas.data.sampler import RandomIdentitySampler
from hwnas.data.transforms import build_transforms

Item = tuple[str, int, int]


def mix_seed(*values: int) -> int:
    """A 63-bit seed from integers (stable across runs and platforms, unlike ``hash``)."""
    digest = hashlib.sha256(",".join(str(int(v)) for v in values).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class BatchSource(Protocol):
    """P x K batches of one split: ``num_batches(epoch)`` and ``batch(epoch, index) -> (images, pids)``."""

    def num_batches(self, epoch: int) -> int: ...

    def batch(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]: ...


class _Plan:
    """The P x K index order of each epoch (cached for the current epoch)."""

    def __init__(self, pids: Sequence[int], batch_size: int, images_per_id: int, seed: int, stream: int) -> None:
        self.pids, self.batch_size, self.images_per_id = list(pids), batch_size, images_per_id
        self.seed, self.stream = seed, stream
        self._cache: tuple[int, list[list[int]]] | None = None
        self._generator = torch.Generator()
        # validates P x K against the data now; reused for every epoch (building it costs more than a pass)
        self._sampler = RandomIdentitySampler(self.pids, batch_size, images_per_id, generator=self._generator)

    def batches(self, epoch: int) -> list[list[int]]:
        if self._cache is None or self._cache[0] != epoch:
            self._generator.manual_seed(mix_seed(self.seed, self.stream, epoch))
            order = list(self._sampler)
            b = self.batch_size
            self._cache = (epoch, [order[i:i + b] for i in range(0, len(order) - b + 1, b)])
        return self._cache[1]


class TensorBatches:
    """In-memory images (N, 3, H, W) and pids (N,): for tests and tiny runs (no augmentation)."""

    def __init__(self, images: torch.Tensor, pids: torch.Tensor, batch_size: int, images_per_id: int,
                 seed: int = 0, stream: int = 0) -> None:
        self.images, self.pids = images, pids.long()
        self.plan = _Plan(self.pids.tolist(), batch_size, images_per_id, seed, stream)

    def num_batches(self, epoch: int) -> int:
        return len(self.plan.batches(epoch))

    def batch(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.tensor(self.plan.batches(epoch)[index])
        return self.images[idx], self.pids[idx]


class ImageBatches:
    """``(path, pid, camid)`` items -> P x K batches of augmented (train) or plain images (H, W)."""

    def __init__(self, items: Sequence[Item], image_size: tuple[int, int], batch_size: int, images_per_id: int,
                 seed: int = 0, stream: int = 0, augment: bool = True, threads: int = 2) -> None:
        self.items = list(items)
        self.image_size, self.augment, self.seed, self.stream = tuple(image_size), augment, seed, stream
        self.plan = _Plan([pid for _, pid, _ in self.items], batch_size, images_per_id, seed, stream)
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="hwnas-search-data")

    def _transform(self):  # one generator + transform per thread
        if not hasattr(self._local, "transform"):
            self._local.generator = torch.Generator()
            h, w = self.image_size
            self._local.transform = build_transforms(h, w, train=self.augment, generator=self._local.generator)
        return self._local.generator, self._local.transform

    def _load(self, job: tuple[int, int, int, int]) -> torch.Tensor:
        epoch, index, position, item = job
        g, transform = self._transform()
        g.manual_seed(mix_seed(self.seed, self.stream, epoch, index, position))
        return transform(read_image(self.items[item][0]))

    def num_batches(self, epoch: int) -> int:
        return len(self.plan.batches(epoch))

    def batch(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = self.plan.batches(epoch)[index]
        jobs = [(epoch, index, pos, i) for pos, i in enumerate(idx)]
        images = torch.stack(list(self._pool.map(self._load, jobs)))
        return images, torch.tensor([self.items[i][1] for i in idx], dtype=torch.long)


@dataclass(frozen=True)
class SearchData:
    """Train and validation batch sources and the number of training identities (classifier size).

    ``val`` feeds the alpha steps; ``val_eval`` (default: ``val``) the final eval-mode accuracy pass, so that
    pass can read the validation images without the training augmentation the alpha steps use.
    """

    train: BatchSource
    val: BatchSource
    num_classes: int
    description: str
    val_eval: BatchSource | None = None
    # what the search reads, so a resume on other data is refused: the reader and a hash of every train and
    # validation image's file name, identity, camera and size (None: in-memory data of tests and benchmarks)
    identity: dict[str, str] | None = None


def market_search_data(root: str | Path, image_size: tuple[int, int], ids_per_batch: int, images_per_id: int,
                       val_per_id: int, seed: int, threads: int = 2, reader: str = "market1501",
                       check_counts: bool = True, val_split: str = "official") -> SearchData:
    """The search's split of a dataset's training images (``reader``: a registered dataset name; DESIGN 2b.5).

    ``val_split='official'``: the paper's code's split (:func:`hwnas.data.split.split_validation_official`),
    validation batches with the training augmentation. ``'disjoint'``: :func:`hwnas.data.split.split_validation`,
    validation batches without augmentation. The eval-mode accuracy pass never augments.
    """
    from hwnas.data.datasets import build_dataset
    from hwnas.data.split import split_for_search

    dataset = build_dataset(reader, root, check_counts=check_counts)
    train, val = split_for_search(dataset.train, val_split, val_per_id,
                                  generator=torch.Generator().manual_seed(seed))
    bs = ids_per_batch * images_per_id
    official = val_split == "official"

    def batches(items: list[Item], stream: int, augment: bool) -> ImageBatches:
        return ImageBatches(items, image_size, bs, images_per_id, seed, stream=stream, augment=augment,
                            threads=threads)

    shared = len(set(train) & set(val))
    return SearchData(
        train=batches(train, 0, True), val=batches(val, 1, official), num_classes=dataset.num_train_pids,
        description=f"{root}: {len(train)} train / {len(val)} validation images of {dataset.num_train_pids} ids "
                    f"({val_split} split, {shared} validation images also in train; validation batches "
                    f"{'with' if official else 'without'} training augmentation)",
        val_eval=batches(val, 1, False) if official else None,
        identity=data_identity(reader, train, val),
    )


def data_identity(reader: str, train: list[Item], val: list[Item]) -> dict[str, str]:
    """The reader's name and a sha256 of the split's images (file name, identity, camera, bytes): the same for a
    moved copy of the same data, different for other data (another seed of the synthetic generator, another
    dataset, edited files)."""
    return {"dataset": reader, "images": images_hash(train=train, val=val)}
