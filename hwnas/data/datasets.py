"""Readers for the standard ReID folder layouts (Market-1501, DukeMTMC-reID, MSMT17), a generic
``market-format`` reader for any folder in Market-1501's layout, and the registry that names them.

Each reader produces three lists of ``(path, pid, camid)`` items: ``train`` (pids relabelled to
0..num_train_pids-1 for the classifier), ``query`` and ``gallery`` (original pids, so that distractors
keep pid 0). ``camid`` is 0-based. Junk boxes (pid -1) are dropped. When the real dataset is given, the
counts are checked against the published sizes; a folder written by :mod:`hwnas.data.synthetic` carries
a ``SYNTHETIC.json`` marker with its own expected counts, which are checked instead.

Every command's ``--dataset`` (and a config file's ``data.dataset``) takes a registered name:
:func:`register_dataset` adds one from Python, and an installed package can add one through the entry-point
group ``hwnas.datasets`` (``name = "package.module:ReaderClass"``), which the commands load when they start.
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from hwnas.errors import DatasetError  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

Item = tuple[str, int, int]
PathLike = str | os.PathLike
SYNTHETIC_MARKER = "SYNTHETIC.json"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_ID = 2**31 - 1
"""Largest person id and camera number a reader accepts (they must fit an int32 label); a larger number in a file
name or list line is refused naming the file."""


@dataclass(frozen=True)
class SplitCounts:
    """Expected number of images and identities of one split."""

    images: int
    ids: int


class ReIDDataset:
    """Base reader: subclasses set ``name``, ``dataset_dir``, ``known_counts`` and implement ``_read_split``.

    ``root`` may be the dataset folder itself or a folder containing ``dataset_dir``. ``check_counts``:
    True (default) raises :class:`DatasetError` if a real dataset's counts differ from the published ones;
    False skips the check (for a trimmed copy of a real dataset; a generated copy, with a SYNTHETIC.json marker, is
    always checked against its marker).
    """

    name = "base"
    dataset_dir = ""
    layout = "see the hwnas.data.datasets docs"
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
        if check_counts or self.synthetic:  # a generated copy is always checked (its marker has the counts)
            self._check_counts()
        logger.info("%s at %s: %s", self.name, self.root, self.summary())

    def _resolve_root(self, root: Path) -> Path:
        _check_utf8(root)
        if not root.is_dir():
            what = "dataset path is a file" if root.exists() else "dataset folder does not exist"
            raise DatasetError(f"{what}, '{_shown(root)}', expected a {self.name} folder ({self.layout})")
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
        if self.synthetic and (not isinstance(expected, dict) or set(expected) != {"train", "query", "gallery"}):
            raise DatasetError(f"the marker's counts are {expected!r}, "
                               f"'{_shown(self.root / SYNTHETIC_MARKER)}', expected "
                               "the images and ids of train, query and gallery as the generator writes them (remove "
                               "the folder and the command that made it generates it again)")
        if not expected:
            return
        got = self.counts()
        for split, want in expected.items():
            if not isinstance(want, SplitCounts):
                # JSON integers only: "64", 64.5 or true are a damaged marker, not a count
                values = [want.get(k) for k in ("images", "ids")] if isinstance(want, dict) else [None]
                if not all(type(v) is int and v >= 0 for v in values) or len(want) != 2:
                    raise DatasetError(f"counts of {split!r} are {want!r}, "
                                       f"'{_shown(self.root / SYNTHETIC_MARKER)}', expected "
                                       '{"images": N, "ids": N} with whole numbers N >= 0')
                want = SplitCounts(*values)
            if split not in got:
                raise DatasetError(f"unknown split {split!r}, '{_shown(self.root / SYNTHETIC_MARKER)}', "
                                   "expected train, "
                                   "query or gallery")
            if got[split] != want:
                if self.synthetic:  # generated by hwnas: a damaged copy is regenerated, never read trimmed
                    source, hint = (f"the counts in {SYNTHETIC_MARKER}", "the generated copy is incomplete or "
                                    "modified; remove the folder and the command that made it generates it again")
                else:
                    source, hint = (f"the published {self.name} sizes", "the copy is incomplete or modified; "
                                    "--no-count-check or check_counts=False reads a trimmed copy; --dataset "
                                    "market-format reads your own data in this layout")
                raise DatasetError(f"{split} split has {got[split].images} images / {got[split].ids} ids, "
                                   f"'{_shown(self.root)}', expected {source}: {want.images} / {want.ids} ({hint})")


class _FolderDataset(ReIDDataset):
    """Datasets with one folder per split and names ``PPPP_cC...`` (pid, camera), e.g. Market-1501."""

    split_dirs: ClassVar[dict[str, str]] = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
    pattern = re.compile(r"^(-?[0-9]+)_c([0-9]+)")  # ASCII digits only: "٠٠٠5" is not pid 5
    max_cam: int | None = 6  # None: any camera number >= 1
    naming = "PPPP_cCsS_FFFFFF_BB.jpg"
    layout = "bounding_box_train/, query/, bounding_box_test/"

    def _read_split(self, split: str) -> list[Item]:
        folder = self.root / self.split_dirs[split]
        files = list_images(folder, self.name)
        items: list[Item] = []
        for f in files:
            m = self.pattern.match(f.name)
            if m is None:
                raise DatasetError(f"image name does not follow the {self.name} naming, '{_shown(f)}', expected "
                                   f"{self.naming}")
            pid, cam = _to_id(m.group(1)), _to_id(m.group(2))
            max_cam = self.max_cam if self.max_cam is not None else MAX_ID
            if not -1 <= pid <= MAX_ID or not 1 <= cam <= max_cam:
                raise DatasetError(f"image has pid {_clip_num(m.group(1))} / camera {_clip_num(m.group(2))}, "
                                   f"'{_shown(f)}', "
                                   f"expected pid -1..{MAX_ID} and camera 1..{max_cam}")
            if pid == -1:  # junk detection
                continue
            if split == "train" and pid == 0:
                raise DatasetError(f"training image has distractor pid 0, '{_shown(f)}', expected training pids >= 1")
            items.append((str(f), pid, cam - 1))
        if not items:
            raise DatasetError(f"no usable images (only junk pid -1), '{_shown(folder)}', expected images of pids >= 0")
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
    layout = "train/, test/ and list_train.txt, list_val.txt, list_query.txt, list_gallery.txt"
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
        raise DatasetError(f"image folder does not exist, '{_shown(self.root / names[0])}' (or '{names[1]}'), "
                           "expected the "
                           f"{self.name} layout ({self.layout})")

    def _read_split(self, split: str) -> list[Item]:
        img_dir = self._image_dir(split)
        items: list[Item] = []
        for list_name in self.lists[split]:
            list_file = self.root / list_name
            if not list_file.is_file():
                raise DatasetError(f"list file does not exist, '{_shown(list_file)}', expected the {self.name} layout "
                                   f"({self.layout})")
            try:
                text = list_file.read_text(encoding="utf-8")
            except UnicodeDecodeError as e:
                raise DatasetError(f"list file is not UTF-8 text (byte {e.start}), '{_shown(list_file)}', "
                                   "expected lines "
                                   "'relative/path.jpg pid'") from None
            for lineno, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    items.append(self._parse_line(line, img_dir, f"'{_shown(list_file)}' line {lineno}"))
        if not items:
            raise DatasetError(f"list files {', '.join(self.lists[split])} are empty, '{_shown(self.root)}', "
                               "expected lines "
                               "'relative/path.jpg pid'")
        return items

    def _parse_line(self, line: str, img_dir: Path, where: str) -> Item:
        parts = line.split()
        if len(parts) != 2 or not _ASCII_INT.fullmatch(parts[1]):
            raise DatasetError(f"list line {line!r}, {where}, expected 'relative/path.jpg pid'")
        name = Path(parts[0]).name.split("_")
        if len(name) < 3 or not _ASCII_UINT.fullmatch(name[2]):
            raise DatasetError(f"file name '{_shown(parts[0])}' has no camera field, {where}, "
                               "expected PPPP_NNN_CC_...jpg")
        pid, cam = _to_id(parts[1]), _to_id(name[2])
        if not -1 <= pid <= MAX_ID or not 1 <= cam <= MAX_ID:
            raise DatasetError(f"list line has pid {_clip_num(parts[1])} / camera {_clip_num(name[2])}, {where}, "
                               f"expected pid -1..{MAX_ID} and camera 1..{MAX_ID}")
        return str(img_dir / parts[0]), pid, cam - 1


class MarketFormat(_FolderDataset):
    """Any dataset in Market-1501's layout: your own data, a trimmed or relabelled copy, a converted set.

    Folders ``bounding_box_train``, ``query`` and ``bounding_box_test`` under ``root``, JPEG/PNG files named
    ``PPPP_cC...`` (``PPPP`` the person id, ``C`` the camera, >= 1, both ASCII digits and at most ``MAX_ID`` =
    2147483647, so they fit an int32 label; the rest of the name is free). pid -1 marks
    junk boxes (dropped), pid 0 distractors (gallery only). No count check: any number of images, identities
    and cameras. Evaluation follows the Market-1501 protocol, so a query needs a gallery image of its identity
    from another camera.
    """

    name = "market-format"
    max_cam = None
    naming = "PPPP_cC<anything>.jpg"

    def _check_counts(self) -> None:
        """No expected counts: any size is accepted (a SYNTHETIC.json marker is ignored too)."""


Reader = Callable[..., ReIDDataset]  # reader(root, *, check_counts: bool) -> ReIDDataset
DATASETS: dict[str, Reader] = {"market1501": Market1501, "dukemtmcreid": DukeMTMCreID, "msmt17": MSMT17,
                               "market-format": MarketFormat}
ENTRY_POINT_GROUP = "hwnas.datasets"
_entry_points_loaded = False


def register_dataset(name: str, reader: Reader, *, replace: bool = False) -> Reader:
    """Make ``reader`` available as ``--dataset name`` (and ``data.dataset: name``) to every command.

    ``reader(root, *, check_counts=True)`` returns a :class:`ReIDDataset` (a subclass, like ``Market1501``, or
    any object with ``train``/``query``/``gallery`` lists of ``(path, pid, camid)``, ``num_train_pids`` and
    ``root``). Registering a taken name raises :class:`UsageError` unless ``replace=True``. Returns ``reader``,
    so it works as a class decorator: ``register_dataset("mine", MyReader)``.
    """
    from hwnas.errors import UsageError

    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name):
        raise UsageError(f"bad dataset name {name!r}, register_dataset, expected lower-case letters, digits, "
                         "'-', '_' or '.'")
    if not callable(reader):
        raise UsageError(f"reader {reader!r} is not callable, register_dataset({name!r}), expected a class or "
                         "function reader(root, *, check_counts)")
    if name in DATASETS and DATASETS[name] is not reader and not replace:
        raise UsageError(f"dataset {name!r} is already registered, register_dataset, expected a new name (or "
                         "replace=True)")
    DATASETS[name] = reader
    return reader


def list_datasets() -> list[str]:
    """Registered dataset names, including those of installed packages (entry-point group ``hwnas.datasets``)."""
    _load_entry_points()
    return sorted(DATASETS)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in DATASETS:
            continue
        try:
            register_dataset(ep.name, ep.load())
        except Exception as e:  # noqa: BLE001 (a broken plugin must not break the built-in datasets)
            logger.warning("dataset plugin %s (%s) not loaded: %s", ep.name, ep.value, e)


def build_dataset(name: str, root: PathLike, *, check_counts: bool = True) -> ReIDDataset:
    """Reader by registered name (:func:`list_datasets`: ``market1501``, ``market-format``, ...)."""
    from hwnas.errors import UsageError

    if name not in list_datasets():
        raise UsageError(f"unknown dataset {name!r}, --dataset, expected one of {', '.join(list_datasets())}")
    return DATASETS[name](root, check_counts=check_counts)


def list_images(folder: Path, dataset: str = "dataset") -> list[Path]:
    """Sorted image files (``.jpg``, ``.jpeg``, ``.png``) of a split folder; a missing or empty folder is an error
    naming it.

    Hidden files (names starting with ``.``, e.g. the ``._*`` AppleDouble files macOS writes beside every image on
    a foreign disk) and files of other types are skipped; how many is logged.
    """
    if not folder.is_dir():
        raise DatasetError(f"{dataset} folder does not exist, '{_shown(folder)}', expected a folder of images")
    files, hidden, other = [], 0, 0
    for p in folder.iterdir():
        if p.name.startswith("."):
            hidden += 1
        elif p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir():
            files.append(p)
        else:
            other += 1
    if hidden or other:
        logger.info("%s: skipped %d hidden file(s) (names starting with '.', e.g. macOS '._*') and %d non-image "
                    "file(s) in %s", dataset, hidden, other, folder)
    if not files:
        raise DatasetError(f"no images, '{_shown(folder)}', expected {dataset} images ({', '.join(IMAGE_SUFFIXES)})")
    return sorted(files)


def _check_utf8(path: Path) -> None:
    """Reports and result files are UTF-8: refuse a dataset path that is not valid UTF-8 before any work."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raw = os.fsencode(path)
        raise DatasetError(f"dataset path is not valid UTF-8 ({raw!r}), data root, expected a UTF-8 folder name "
                           "(reports and result files name it; rename the folder)") from None


_ASCII_INT = re.compile(r"-?[0-9]+")
_ASCII_UINT = re.compile(r"[0-9]+")


def _shown(path: PathLike) -> str:
    """A path or file name for an error message: control characters (a newline or NUL in a name) escaped."""
    from hwnas._cli import printable

    return printable(str(path))


def _to_id(digits: str) -> int:
    """An ASCII ``-?[0-9]+`` number; one too long for an id becomes MAX_ID + 1 (out of range, never a ValueError of
    Python's 4300-digit int() limit)."""
    return int(digits) if len(digits.lstrip("-").lstrip("0")) <= 12 else MAX_ID + 1


def _clip_num(digits: str, limit: int = 24) -> str:
    """A number as written in a name, shortened for an error line (a 10,000-digit pid is not echoed whole)."""
    return str(int(digits)) if len(digits) <= limit else f"{digits[:limit]}... ({len(digits)} digits)"


def _pid_map(items: list[Item]) -> dict[int, int]:
    return {pid: label for label, pid in enumerate(sorted({pid for _, pid, _ in items}))}


def _read_marker(root: Path) -> dict:
    marker = root / SYNTHETIC_MARKER
    if not marker.is_file():
        return {}
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as e:  # not JSON or UTF-8, an integer of too many digits
        raise DatasetError(f"synthetic marker is not valid JSON ({getattr(e, 'msg', type(e).__name__)}), "
                           f"'{_shown(marker)}', expected the JSON written by hwnas.data.synthetic") from None
    if not isinstance(data, dict):
        raise DatasetError(f"synthetic marker holds a {type(data).__name__}, '{_shown(marker)}', "
                           "expected a JSON object")
    return data
