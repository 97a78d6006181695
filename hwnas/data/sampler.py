"""P x K identity sampler (Bag of Tricks / the seed: 16 identities x 4 images = batches of 64)."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

from hwnas.errors import DatasetError, UsageError

PidsOrItems = Sequence[int | tuple[str, int, int]]


def _pids(data_source: PidsOrItems) -> list[int]:
    return [int(x[1]) if isinstance(x, (tuple, list)) else int(x) for x in data_source]


class RandomIdentitySampler(Sampler[int]):
    """Yields dataset indices so that each consecutive ``batch_size`` block holds P = batch_size / K identities
    with K = ``num_instances`` images each (the batch-hard triplet loss needs positives in every batch).

    Each epoch every identity's images are shuffled and cut into chunks of K (identities with fewer than K
    images are padded by drawing with replacement); batches draw P distinct identities at random, weighted
    by their remaining chunks, until fewer than P identities are left. ``data_source`` is a list of pids or
    of ``(path, pid, camid)`` items. Randomness comes only from ``generator`` (seed it per epoch for exact
    resumption); ``len`` is an upper bound on the samples one epoch yields.
    """

    def __init__(self, data_source: PidsOrItems, batch_size: int = 64, num_instances: int = 4, *,
                 generator: torch.Generator | None = None) -> None:
        if num_instances < 1 or batch_size % num_instances:
            raise UsageError(f"batch size {batch_size} with {num_instances} instances per identity, P x K sampler, "
                             "expected a batch size that is a positive multiple of num_instances")
        self.index_by_pid: dict[int, list[int]] = defaultdict(list)
        for i, pid in enumerate(_pids(data_source)):
            self.index_by_pid[pid].append(i)
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.num_pids_per_batch = batch_size // num_instances
        if len(self.index_by_pid) < self.num_pids_per_batch:
            raise DatasetError(f"only {len(self.index_by_pid)} identities, P x K sampler, expected at least "
                               f"{self.num_pids_per_batch} for one batch of {batch_size} (lower the batch size or "
                               "raise the instances per identity)")
        self.generator = generator
        chunks = sum(max(len(v), num_instances) // num_instances for v in self.index_by_pid.values())
        self._length = chunks // self.num_pids_per_batch * batch_size

    def __len__(self) -> int:
        return self._length

    def _chunks(self, g: torch.Generator) -> list[list[list[int]]]:
        """Per identity (sorted pids): its images in random order (fewer than K: K drawn with replacement),
        cut into chunks of K. Python lists throughout: element-wise tensor indexing costs more than the draws."""
        k = self.num_instances
        out = []
        for pid in sorted(self.index_by_pid):
            idx = self.index_by_pid[pid]
            if len(idx) < k:
                order = torch.randint(len(idx), (k,), generator=g).tolist()
            else:
                order = torch.randperm(len(idx), generator=g).tolist()
            idx = [idx[j] for j in order]
            out.append([idx[j:j + k] for j in range(0, len(idx) - k + 1, k)])
        return out

    def __iter__(self) -> Iterator[int]:
        g = self.generator
        if g is None:
            g = torch.Generator().manual_seed(int(torch.randint(2**62, ()).item()))
        chunks = self._chunks(g)
        remaining = [len(c) for c in chunks]  # chunks left per identity, as a list and as multinomial weights
        weights = torch.tensor(remaining, dtype=torch.float64)
        active = sum(r > 0 for r in remaining)
        while active >= self.num_pids_per_batch:
            chosen = torch.multinomial(weights, self.num_pids_per_batch, replacement=False, generator=g)
            weights.index_add_(0, chosen, torch.full((len(chosen),), -1.0, dtype=torch.float64))
            for p in chosen.tolist():
                remaining[p] -= 1
                active -= remaining[p] == 0
                yield from chunks[p][remaining[p]]
