"""Readers for the standard ReID folder layouts: Market-1501, DukeMTMC-reID and MSMT17.

Each reader produces three lists of ``(path, pid, camid)`` items: ``train`` (pids relabelled to
0..num_train_pids-1 for the classifier), ``query`` and ``gallery`` (original pids, so that distractors
keep pid 0). ``camid`` is 0-based. Junk boxes (pid -1) are dropped. When the real dataset is given, the
counts are checked against the published sizes; a folder written by :mod:`hwnas.data.synthetic` carries
a ``SYNTHETIC.json`` marker with its own expected counts, which are checked instead.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from hwnas.errors import DatasetError  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

Item = tuple[str, int, int]
PathLike = str | os.PathLike
SYNTHETIC_MARKER = "SYNTHETIC.json"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class SplitCounts:
    """Expected number of images and identities of one split."""

    images: int
    ids: int


class ReIDDataset:
    """Base reader: subclasses set ``name``, ``dataset_dir``, ``known_counts`` and implement ``_read_split``.

    ``root`` may be the dataset folder itself or a folder containing ``dataset_dir``. ``check_counts``:
    True (default) raises :class:`DatasetError` if a real dataset's counts differ from the published ones;
    False skips the check (for a trimmed copy).
    """

    name = "base"
    dataset_dir = ""
    known_counts: ClassVar[dict[str, SplitCounts]] = {}

    def __init__(self, root: PathLike, *, check_counts: bool = True) -> None:
        self.root = self._resolve_root(Path(root))
        self.synthetic = _read_marker(self.root)
        train = self._read_split("train")
        self.train_pid_map = _pid_map(train)
        self.train: list[Item] = [(p, self.train_pid_map[pid], cam) for p, pid, cam in train]
        self.query: list[Item] = self._read_split("query")
        self.gallery: list[Item] = self._read_split("gallery")
        self.num_train_pids = len(self.train_pid_map)
        self.num_train_cams = len({c for _, _, c in self.train})
        if check_counts:
            self._check_counts()
        logger.info("%s at %s: %s", self.name, self.root, self.summary())

    def _resolve_root(self, root: Path) -> Path:
        if not root.is_dir():
            raise DatasetError(f"{self.name}: dataset folder '{root}' does not exist, {root}, expected a folder in "
                               f"the {self.name} layout")
        if self.dataset_dir and (root / self.dataset_dir).is_dir():
            return root / self.dataset_dir
        return root

    def _read_split(self, split: str) -> list[Item]:
        raise NotImplementedError

    def counts(self) -> dict[str, SplitCounts]:
        """Images and identities per split, as read."""
        return {s: SplitCounts(len(items), len({pid for _, pid, _ in items}))
                for s, items in (("train", self.train), ("query", self.query), ("gallery", self.gallery))}

    def summary(self) -> str:
        return ", ".join(f"{s} {c.images} images / {c.ids} ids" for s, c in self.counts().items())

    def _check_counts(self) -> None:
        expected = self.synthetic.get("counts") if self.synthetic else self.known_counts
        if not expected:
            return
        got = self.counts()
        for split, want in expected.items():
            want = want if isinstance(want, SplitCounts) else SplitCounts(**want)
            if got[split] != want:
                source = f"the counts in {SYNTHETIC_MARKER}" if self.synthetic else f"the published {self.name} sizes"
                raise DatasetError(
                    f"{self.name} at '{self.root}': {split} has {got[split].images} images / {got[split].ids} ids, "
                    f"but {source} are {want.images} / {want.ids}; the copy is incomplete or modified "
                    f"(pass check_counts=False to use a trimmed copy)"
                )


class _FolderDataset(ReIDDataset):
    """Datasets with one folder per split and names ``PPPP_cC...`` (pid, camera), e.g. Market-1501."""

    split_dirs: ClassVar[dict[str, str]] = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
    pattern = re.compile(r"^(-?\d+)_c(\d+)")
    max_cam = 6
    naming = "PPPP_cCsS_FFFFFF_BB.jpg"

    def _read_split(self, split: str) -> list[Item]:
        folder = self.root / self.split_dirs[split]
        files = list_images(folder, self.name)
        items: list[Item] = []
        for f in files:
            m = self.pattern.match(f.name)
            if m is None:
                raise DatasetError(f"{self.name}: file '{f}' does not follow the naming convention {self.naming}")
            pid, cam = int(m.group(1)), int(m.group(2))
            if pid < -1 or not 1 <= cam <= self.max_cam:
                raise DatasetError(f"{self.name}: file '{f}' has pid {pid} / camera {cam}; expected pid >= -1 and "
                                   f"camera 1..{self.max_cam}")
            if pid == -1:  # junk detection
                continue
            if split == "train" and pid == 0:
                raise DatasetError(f"{self.name}: training file '{f}' has distractor pid 0")
            items.append((str(f), pid, cam - 1))
        if not items:
            raise DatasetError(f"{self.name}: folder '{folder}' has no usable images (only junk pid -1)")
        return items


class Market1501(_FolderDataset):
    """Market-1501 (Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015).

    URL: https://zheng-lab.cecs.anu.edu.au/Project/project_reid.html. Folder ``Market-1501-v15.09.15`` with
    ``bounding_box_train`` (12,936 images / 751 ids), ``query`` (3,368 / 750) and ``bounding_box_test``
    (19,732 files; 15,913 after dropping junk pid -1, 751 ids counting distractor pid 0).
    """

    name = "market1501"
    dataset_dir = "Market-1501-v15.09.15"
    known_counts: ClassVar[dict[str, SplitCounts]] = {"train": SplitCounts(12936, 751), "query": SplitCounts(3368, 750),
                    "gallery": SplitCounts(15913, 751)}


class DukeMTMCreID(_FolderDataset):
    """DukeMTMC-reID (Zheng et al., "Unlabeled Samples Generated by GAN ...", ICCV 2017; Ristani et al. 2016).

    URL: https://github.com/layumi/DukeMTMC-reID_evaluation. Folder ``DukeMTMC-reID`` with the Market-1501
    layout and 8 cameras: train 16,522 images / 702 ids, query 2,228 / 702, gallery 17,661 / 1,110.
    """

    name = "dukemtmcreid"
    dataset_dir = "DukeMTMC-reID"
    max_cam = 8
    naming = "PPPP_cC_fFFFFFFF.jpg"
    known_counts: ClassVar[dict[str, SplitCounts]] = {"train": SplitCounts(16522, 702), "query": SplitCounts(2228, 702),
                    "gallery": SplitCounts(17661, 1110)}


class MSMT17(ReIDDataset):
    """MSMT17 (Wei et al., "Person Transfer GAN to Bridge Domain Gap for Person Re-Identification", CVPR 2018).

    URL: https://www.pkuvmc.com/dataset.html. Folder ``MSMT17_V1`` (or ``MSMT17_V2``) with ``train/`` and
    ``test/`` (``mask_train_v2``/``mask_test_v2`` in V2) and list files ``list_train.txt`` + ``list_val.txt``
    (training, 32,621 images / 1,041 ids), ``list_query.txt`` (11,659 / 3,060) and ``list_gallery.txt``
    (82,161 / 3,060). List lines are ``relative/path.jpg pid``; the camera is the third ``_`` field of the name.
    """

    name = "msmt17"
    known_counts: ClassVar[dict[str, SplitCounts]] = {"train": SplitCounts(32621, 1041), "query": SplitCounts(11659, 3060),
                    "gallery": SplitCounts(82161, 3060)}
    lists: ClassVar[dict[str, tuple[str, ...]]] = {"train": ("list_train.txt", "list_val.txt"), "query": ("list_query.txt",),
             "gallery": ("list_gallery.txt",)}

    def _resolve_root(self, root: Path) -> Path:
        root = super()._resolve_root(root)
        for sub in ("MSMT17_V1", "MSMT17_V2", "MSMT17"):
            if (root / sub / "list_query.txt").is_file():
                return root / sub
        return root

    def _image_dir(self, split: str) -> Path:
        names = ("train", "mask_train_v2") if split == "train" else ("test", "mask_test_v2")
        for n in names:
            if (self.root / n).is_dir():
                return self.root / n
        raise DatasetError(f"{self.name}: image folder '{self.root / names[0]}' (or '{names[1]}') does not exist")

    def _read_split(self, split: str) -> list[Item]:
        img_dir = self._image_dir(split)
        items: list[Item] = []
        for list_name in self.lists[split]:
            list_file = self.root / list_name
            if not list_file.is_file():
                raise DatasetError(f"{self.name}: list file '{list_file}' does not exist")
            for lineno, line in enumerate(list_file.read_text().splitlines(), start=1):
                if line.strip():
                    items.append(self._parse_line(line, img_dir, f"'{list_file}' line {lineno}"))
        if not items:
            raise DatasetError(f"{self.name}: list files {self.lists[split]} in '{self.root}' are empty")
        return items

    def _parse_line(self, line: str, img_dir: Path, where: str) -> Item:
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DatasetError(f"{self.name}: {where} is {line!r}; expected 'relative/path.jpg pid'")
        name = Path(parts[0]).name.split("_")
        if len(name) < 3 or not name[2].isdigit():
            raise DatasetError(f"{self.name}: {where}: file name '{parts[0]}' has no camera field "
                               f"(expected PPPP_NNN_CC_...jpg)")
        return str(img_dir / parts[0]), int(parts[1]), int(name[2]) - 1


DATASETS: dict[str, type[ReIDDataset]] = {"market1501": Market1501, "dukemtmcreid": DukeMTMCreID, "msmt17": MSMT17}


def build_dataset(name: str, root: PathLike, *, check_counts: bool = True) -> ReIDDataset:
    """Reader by name (``market1501`` | ``dukemtmcreid`` | ``msmt17``)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return DATASETS[name](root, check_counts=check_counts)


def list_images(folder: Path, dataset: str = "dataset") -> list[Path]:
    """Sorted image files of a split folder; a missing or empty folder is an error naming it."""
    if not folder.is_dir():
        raise DatasetError(f"{dataset}: folder '{folder}' does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{dataset}: folder '{folder}' has no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _pid_map(items: list[Item]) -> dict[int, int]:
    return {pid: label for label, pid in enumerate(sorted({pid for _, pid, _ in items}))}


def _read_marker(root: Path) -> dict:
    marker = root / SYNTHETIC_MARKER
    if not marker.is_file():
        return {}
    try:
        return json.loads(marker.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"synthetic marker '{marker}' is not valid JSON ({e.msg})") from None
