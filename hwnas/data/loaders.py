"""Image datasets and DataLoader builders for training (P x K batches) and testing (fixed order)."""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from hwnas.data.datasets import DatasetError
from hwnas.data.sampler import RandomIdentitySampler
from hwnas.data.transforms import build_transforms
from hwnas.errors import ImageReadError  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

Item = tuple[str, int, int]


def read_image(path: str) -> Image.Image:
    """Open and fully decode an RGB image; a corrupt or truncated file raises :class:`ImageReadError`."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except FileNotFoundError:
        raise ImageReadError(f"image file '{path}' does not exist") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise ImageReadError(f"image file '{path}' is corrupt or truncated ({e})") from None


class ImageDataset(Dataset):
    """``(path, pid, camid)`` items -> ``(image tensor (3, H, W), pid, camid)``."""

    def __init__(self, items: Sequence[Item], transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.items = list(items)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        path, pid, camid = self.items[index]
        return self.transform(read_image(path)), pid, camid


def build_train_loader(items: Sequence[Item], *, height: int = 256, width: int = 128, batch_size: int = 64,
                       num_instances: int = 4, num_workers: int = 0, generator: torch.Generator | None = None,
                       train_transforms: bool = True) -> DataLoader:
    """P x K loader over ``items`` with the training transforms.

    ``generator`` drives the sampler and the workers' seeds: reseed it before each epoch to make the epoch
    reproducible (with ``num_workers=0`` the transforms draw from torch's default generator instead).
    """
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    sampler = RandomIdentitySampler(items, batch_size, num_instances, generator=generator)
    dataset = ImageDataset(items, build_transforms(height, width, train=train_transforms))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                      generator=generator, drop_last=True, pin_memory=torch.cuda.is_available(),
                      persistent_workers=False)


def build_test_loader(items: Sequence[Item], *, height: int = 256, width: int = 128, batch_size: int = 128,
                      num_workers: int = 0) -> DataLoader:
    """Loader in item order with the test transforms (for feature extraction)."""
    dataset = ImageDataset(items, build_transforms(height, width, train=False))
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      pin_memory=torch.cuda.is_available())
