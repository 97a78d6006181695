"""Image datasets and DataLoader builders for training (P x K batches) and testing (fixed order)."""
from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Sequence

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from hwnas.data.sampler import RandomIdentitySampler
from hwnas.data.transforms import build_transforms
from hwnas.errors import ImageReadError  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

Item = tuple[str, int, int]


def read_image(path: str) -> Image.Image:
    """Open and fully decode an image as 8-bit RGB.

    Any pixel format PIL reads is converted with PIL: palette, grayscale, CMYK, alpha (dropped); 16-bit grayscale
    (modes ``I;16*`` and ``I``) is scaled from 0..65535 to 0..255 instead of being clipped at 255. Raises
    :class:`ImageReadError` naming the file when it is missing, corrupt, truncated, not an image, larger than
    PIL's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) or in an unsupported format (32-bit float).
    """
    try:
        with Image.open(path) as img:
            pixels = img.width * img.height
            limit = Image.MAX_IMAGE_PIXELS
            if limit is not None and pixels > limit:
                raise ImageReadError(f"image of {img.width}x{img.height} pixels (a decompression bomb?), '{path}', "
                                     f"expected at most {limit} pixels (PIL.Image.MAX_IMAGE_PIXELS)")
            img.load()
            return _to_rgb(img, path)
    except ImageReadError:
        raise
    except FileNotFoundError:
        raise ImageReadError(f"image file does not exist, '{path}', expected an image file") from None
    except Image.DecompressionBombError as e:
        raise ImageReadError(f"image too large, a decompression bomb ({e}), '{path}', expected at most "
                             f"{Image.MAX_IMAGE_PIXELS} pixels") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError, TypeError, IndexError, EOFError,
            struct.error) as e:  # what PIL's decoders raise for a damaged file
        raise ImageReadError(f"image file is corrupt, truncated or not an image ({type(e).__name__}: {e}), "
                             f"'{path}', expected a readable JPEG or PNG image") from None


def _to_rgb(img: Image.Image, path: str) -> Image.Image:
    if img.mode.startswith("I;16") or img.mode == "I":
        # 16-bit grayscale: 0..65535 -> 0..255 (rounded); PIL's plain convert would clip everything above 255
        img = img.convert("I").point(lambda v: v * (1 / 257) + 0.5).convert("L")
    elif img.mode == "F":
        raise ImageReadError(f"32-bit floating-point image, '{path}', expected an 8- or 16-bit image (JPEG, PNG)")
    return img.convert("RGB")


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
