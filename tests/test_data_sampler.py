"""P x K sampler and the search's validation split."""
from __future__ import annotations

from collections import Counter

import pytest
import torch

from hwnas.data.sampler import RandomIdentitySampler
from hwnas.data.split import split_validation


def _items(counts: list[int]) -> list[tuple[str, int, int]]:
    return [(f"{pid}_{i}.jpg", pid, i % 2) for pid, n in enumerate(counts) for i in range(n)]


def test_batches_are_p_by_k():
    items = _items([9, 4, 2, 7, 5, 12, 3, 8])
    sampler = RandomIdentitySampler(items, batch_size=8, num_instances=4, generator=torch.Generator().manual_seed(0))
    order = list(sampler)
    assert order and len(order) % 8 == 0 and len(order) <= len(sampler)
    for b in range(0, len(order), 8):
        pids = [items[i][1] for i in order[b:b + 8]]
        assert sorted(Counter(pids).values()) == [4, 4]  # 2 identities x 4 images
        assert len(set(pids[:4])) == 1 and len(set(pids[4:])) == 1
    padded = [i for i in order if items[i][1] == 2]  # 2 images only: drawn with replacement up to 4
    assert set(padded) <= {13, 14}


def test_generator_makes_it_reproducible():
    items = _items([6] * 10)
    a = list(RandomIdentitySampler(items, 12, 3, generator=torch.Generator().manual_seed(5)))
    b = list(RandomIdentitySampler(items, 12, 3, generator=torch.Generator().manual_seed(5)))
    c = list(RandomIdentitySampler(items, 12, 3, generator=torch.Generator().manual_seed(6)))
    assert a == b and a != c
    assert len(a) == len(RandomIdentitySampler(items, 12, 3)) == 60  # 20 chunks of 3 -> 5 batches of 12


def test_sampler_rejects_bad_shapes():
    with pytest.raises(ValueError, match="multiple of num_instances"):
        RandomIdentitySampler(_items([4, 4]), batch_size=6, num_instances=4)
    with pytest.raises(ValueError, match="only 2 identities, P x K sampler, expected at least 16"):
        RandomIdentitySampler(_items([4, 4]))


def test_split_validation():
    items = _items([9, 4, 1, 6])
    train, val = split_validation(items, per_id=4, generator=torch.Generator().manual_seed(0))
    assert Counter(p for _, p, _ in val) == {0: 4, 1: 3, 3: 4}  # id 1 keeps one, id 2 (1 image) stays in train
    assert {p for _, p, _ in train} == {0, 1, 2, 3}
    assert sorted(train + val) == sorted(items) and not set(train) & set(val)
    assert split_validation(items, generator=torch.Generator().manual_seed(0)) == (train, val)
    assert split_validation(items, generator=torch.Generator().manual_seed(1))[1] != val
