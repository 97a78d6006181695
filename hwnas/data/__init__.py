"""ReID data: dataset readers, the synthetic Market-1501 generator, P x K sampling, transforms, loaders."""
from hwnas.data.datasets import (DATASETS, DatasetError, DukeMTMCreID, Market1501, MSMT17, ReIDDataset,
                                 build_dataset)
from hwnas.data.loaders import ImageDataset, ImageReadError, build_test_loader, build_train_loader, read_image
from hwnas.data.sampler import RandomIdentitySampler
from hwnas.data.split import split_validation
from hwnas.data.synthetic import generate_synthetic_market
from hwnas.data.transforms import build_transforms

__all__ = ["DATASETS", "DatasetError", "DukeMTMCreID", "ImageDataset", "ImageReadError", "MSMT17", "Market1501",
           "RandomIdentitySampler", "ReIDDataset", "build_dataset", "build_test_loader", "build_train_loader",
           "build_transforms", "generate_synthetic_market", "read_image", "split_validation"]
