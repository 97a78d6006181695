"""Image transforms of DESIGN 3, written with PIL and torch (torchvision is not available with our torch).

Training: resize to (H, W), horizontal flip p=0.5, pad 10 + random crop back to (H, W), to tensor, ImageNet
normalisation, random erasing p=0.5. Test: resize + normalisation. Random draws use ``generator`` when one
is given and torch's default generator otherwise (which DataLoader workers seed per worker).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _rand(generator: torch.Generator | None) -> float:
    return float(torch.rand((), generator=generator))


def _randint(high: int, generator: torch.Generator | None) -> int:
    """Uniform integer in [0, high]."""
    return int(torch.randint(high + 1, (), generator=generator))


class Resize:
    """Resize a PIL image to (height, width) with bilinear interpolation."""

    def __init__(self, height: int, width: int) -> None:
        self.size = (width, height)

    def __call__(self, img: Image.Image) -> Image.Image:
        return img if img.size == self.size else img.resize(self.size, Image.BILINEAR)


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5, generator: torch.Generator | None = None) -> None:
        self.p, self.generator = p, generator

    def __call__(self, img: Image.Image) -> Image.Image:
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if _rand(self.generator) < self.p else img


class PadRandomCrop:
    """Zero-pad ``padding`` pixels on every side, then crop a random (height, width) window."""

    def __init__(self, height: int, width: int, padding: int = 10, generator: torch.Generator | None = None) -> None:
        self.height, self.width, self.padding, self.generator = height, width, padding, generator

    def __call__(self, img: Image.Image) -> Image.Image:
        img = ImageOps.expand(img, border=self.padding, fill=0)
        x = _randint(img.width - self.width, self.generator)
        y = _randint(img.height - self.height, self.generator)
        return img.crop((x, y, x + self.width, y + self.height))


class ToNormalizedTensor:
    """PIL RGB image -> float tensor (3, H, W), (x / 255 - mean) / std."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        x = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32).copy()).permute(2, 0, 1)
        return (x / 255.0 - self.mean) / self.std


class RandomErasing:
    """Random erasing (Zhong et al., AAAI 2020) on a normalised tensor: with probability ``p`` a rectangle of
    area fraction in [sl, sh] and aspect ratio in [r1, 1/r1] is set to 0 (the mean colour after normalisation).
    """

    def __init__(self, p: float = 0.5, sl: float = 0.02, sh: float = 0.4, r1: float = 0.3,
                 generator: torch.Generator | None = None) -> None:
        self.p, self.sl, self.sh, self.r1, self.generator = p, sl, sh, r1, generator

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if _rand(self.generator) >= self.p:
            return x
        _, h, w = x.shape
        for _ in range(100):
            area = h * w * (self.sl + (self.sh - self.sl) * _rand(self.generator))
            log_r = math.log(self.r1) + (-2 * math.log(self.r1)) * _rand(self.generator)
            eh = round(math.sqrt(area * math.exp(log_r)))
            ew = round(math.sqrt(area / math.exp(log_r)))
            if 0 < eh < h and 0 < ew < w:
                y, x0 = _randint(h - eh, self.generator), _randint(w - ew, self.generator)
                x = x.clone()
                x[:, y:y + eh, x0:x0 + ew] = 0.0
                return x
        return x


class Compose:
    def __init__(self, transforms: Sequence[Callable]) -> None:
        self.transforms = list(transforms)

    def __call__(self, img):
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        return f"Compose({', '.join(type(t).__name__ for t in self.transforms)})"


def build_transforms(height: int = 256, width: int = 128, train: bool = True, *, flip_p: float = 0.5,
                     padding: int | None = None, erasing_p: float = 0.5,
                     generator: torch.Generator | None = None) -> Compose:
    """PIL image -> normalised tensor (3, height, width): the training pipeline of DESIGN 3 or the test one.

    ``padding`` defaults to 10 pixels at width 128 (DESIGN 3) and scales with the width, so smaller inputs get
    the same relative shift (pad 10 on a 32-pixel-wide image would move the person by a third of its width).
    """
    if padding is None:
        padding = max(1, round(10 * width / 128))
    if not train:
        return Compose([Resize(height, width), ToNormalizedTensor()])
    return Compose([Resize(height, width), RandomHorizontalFlip(flip_p, generator),
                    PadRandomCrop(height, width, padding, generator), ToNormalizedTensor(),
                    RandomErasing(erasing_p, generator=generator)])
