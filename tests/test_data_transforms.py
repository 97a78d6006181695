"""Training / test transforms (PIL + torch)."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from hwnas.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PadRandomCrop,
    RandomErasing,
    RandomHorizontalFlip,
    build_transforms,
)


def _img(h: int = 20, w: int = 10) -> Image.Image:
    arr = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(arr)


def test_test_transform_resizes_and_normalises():
    img = Image.new("RGB", (7, 13), (255, 0, 128))
    x = build_transforms(16, 8, train=False)(img)
    assert x.shape == (3, 16, 8) and x.dtype == torch.float32
    want = (torch.tensor([1.0, 0.0, 128 / 255]) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(x[:, 5, 3], want)


def test_train_transform_is_random_but_seedable():
    t = build_transforms(16, 8, train=True)
    torch.manual_seed(0)
    a = torch.stack([t(_img()) for _ in range(4)])
    torch.manual_seed(0)
    b = torch.stack([t(_img()) for _ in range(4)])
    assert a.shape == (4, 3, 16, 8) and torch.equal(a, b)
    assert not torch.equal(a[0], a[1])


def test_flip_crop_erasing():
    img = _img()
    flipped = RandomHorizontalFlip(1.0)(img)
    assert np.array_equal(np.asarray(flipped), np.asarray(img)[:, ::-1])
    g = torch.Generator().manual_seed(1)
    crops = [np.asarray(PadRandomCrop(20, 10, padding=3, generator=g)(img)) for _ in range(20)]
    assert all(c.shape == (20, 10, 3) for c in crops)
    assert any(c[:, :, :].sum() != np.asarray(img).sum() for c in crops)  # some crops include padding
    x = torch.ones(3, 40, 20)
    erased = RandomErasing(p=1.0, generator=torch.Generator().manual_seed(0))(x)
    frac = (erased == 0).all(0).float().mean().item()
    assert 0.02 * 0.5 <= frac <= 0.4 * 1.5 and torch.equal(x, torch.ones(3, 40, 20))  # input untouched
    assert torch.equal(RandomErasing(p=0.0)(x), x)
