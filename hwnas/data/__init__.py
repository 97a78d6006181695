"""ReID data: dataset readers (and their registry), P x K sampling, transforms, loaders and the synthetic
Market-1501 generator."""
from hwnas.data.config import DataConfig, DatasetConfig
from hwnas.data.datasets import (
    DATASETS,
    MSMT17,
    DatasetError,
    DukeMTMCreID,
    Market1501,
    MarketFormat,
    ReIDDataset,
    build_dataset,
    list_datasets,
    register_dataset,
)
from hwnas.data.loaders import ImageDataset, ImageReadError, build_test_loader, build_train_loader, read_image
from hwnas.data.sampler import RandomIdentitySampler
from hwnas.data.split import split_validation, split_validation_official
from hwnas.data.transforms import build_transforms

__all__ = [
    "DATASETS",
    "DataConfig",
    "DatasetConfig",
    "MSMT17",
    "DatasetError",
    "DukeMTMCreID",
    "ImageDataset",
    "ImageReadError",
    "Market1501",
    "MarketFormat",
    "RandomIdentitySampler",
    "ReIDDataset",
    "build_dataset",
    "build_test_loader",
    "build_train_loader",
    "build_transforms",
    "generate_synthetic_market",
    "list_datasets",
    "read_image",
    "register_dataset",
    "split_validation",
    "split_validation_official",
]


def __getattr__(name: str):
    # Imported lazily so that ``python -m hwnas.data.synthetic`` does not find its module already loaded.
    if name == "generate_synthetic_market":
        from hwnas.data.synthetic import generate_synthetic_market
        return generate_synthetic_market
    raise AttributeError(f"module 'hwnas.data' has no attribute {name!r}")
