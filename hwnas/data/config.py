"""The ``data`` section of a run's config: which images a command reads (a dataset folder, or synthetic data)."""
from __future__ import annotations

import os
from dataclasses import dataclass

from hwnas.errors import UsageError


@dataclass(frozen=True)
class DatasetConfig:
    """A dataset folder in a registered layout (``hwnas.data.list_datasets()``).

    ``root``: the folder (or its parent, for the named datasets); ``None`` means no folder (search then generates
    its synthetic set). ``check_counts``: compare a real dataset's counts with the published ones (the
    ``market-format`` reader has none to compare).
    """

    dataset: str = "market1501"
    root: str | None = None
    check_counts: bool = True

    def __post_init__(self) -> None:
        from hwnas.data.datasets import list_datasets

        if self.dataset not in list_datasets():
            raise UsageError(f"unknown dataset {self.dataset!r}, {type(self).__name__}.dataset, expected one of "
                             f"{', '.join(list_datasets())}")
        if self.root is not None and not str(self.root).strip():
            raise UsageError(f"empty folder name, {type(self).__name__}.root, expected a dataset folder")
        if self.root is not None:
            try:
                str(self.root).encode("utf-8")
            except UnicodeEncodeError:  # a surrogate-escaped byte: config.yaml and the reports could not name it
                raise UsageError(f"dataset path is not valid UTF-8 ({os.fsencode(self.root)!r}), "
                                 f"{type(self).__name__}.root, expected a UTF-8 folder name (reports and result files "
                                 "name it; rename the folder)") from None


@dataclass(frozen=True)
class DataConfig(DatasetConfig):
    """A dataset folder, or (``synthetic: true``) a synthetic Market-1501-format set generated once and reused.

    The ``synthetic_*`` fields size the synthetic set; ``synthetic_dir`` is where it lives (default
    ``runs/synthetic/<settings>``).
    """

    synthetic: bool = False
    synthetic_ids: int = 64
    synthetic_images_per_id: int = 12
    synthetic_cameras: int = 6
    synthetic_seed: int = 0
    synthetic_dir: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.synthetic and self.root is not None:
            raise UsageError(f"both a dataset folder ({self.root}) and synthetic data, DataConfig.synthetic, "
                             "expected one of them (data.root or data.synthetic)")
        for name in ("synthetic_ids", "synthetic_images_per_id", "synthetic_cameras"):
            if getattr(self, name) < 2:
                raise UsageError(f"bad value {getattr(self, name)!r}, DataConfig.{name}, expected an integer >= 2")

    @property
    def source(self) -> str:
        """``synthetic``, or the dataset name (the label results carry)."""
        return "synthetic" if self.synthetic else self.dataset
