"""Command-line options shared by train / evaluate / report tsne: a real dataset folder or a synthetic one.

The flags map one-to-one onto :class:`hwnas.data.config.DataConfig` (the ``data`` section of a config file).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Container
from pathlib import Path

from hwnas.data.config import DataConfig
from hwnas.data.datasets import SYNTHETIC_MARKER, DatasetError, Market1501, ReIDDataset, build_dataset, list_datasets
from hwnas.data.synthetic import GENERATOR_VERSION, check_synthetic_size, generate_synthetic_market_atomic

logger = logging.getLogger(__name__)

SYNTHETIC_ROOT = Path("runs") / "synthetic"
# flag dest -> DataConfig field (the --no-count-check flag is the negation of check_counts)
FLAG_FIELDS = {"data_root": "root", "dataset": "dataset", "synthetic": "synthetic",
               "synthetic_dir": "synthetic_dir", "synthetic_ids": "synthetic_ids",
               "synthetic_images_per_id": "synthetic_images_per_id", "synthetic_cameras": "synthetic_cameras",
               "synthetic_seed": "synthetic_seed"}


def add_dataset_argument(group: argparse._ActionsContainer) -> None:
    """``--dataset NAME``: any registered reader (``hwnas.data.register_dataset``), listed in ``--help``."""
    group.add_argument("--dataset", choices=list_datasets(), default="market1501",
                       help="layout of --data-root: a registered reader; market-format reads any folder in "
                            "Market-1501's layout without a count check")


def add_data_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """The data flags; ``required=False`` when a config file (``data:`` section) may give the source instead."""
    from hwnas._cli import int_at_least, path, seed

    g = parser.add_argument_group("data (a dataset folder, or --synthetic)")
    src = g.add_mutually_exclusive_group(required=required)
    src.add_argument("--data-root", type=path, metavar="PATH", help="dataset folder (e.g. .../Market-1501-v15.09.15 or its parent)")
    src.add_argument("--synthetic", action="store_true",
                     help="generate (once, then reuse) a synthetic Market-1501-format dataset")
    add_dataset_argument(g)
    g.add_argument("--no-count-check", action="store_true", help="accept a trimmed copy of a real dataset")
    g.add_argument("--synthetic-dir", type=path, default=None, metavar="DIR",
                   help=f"where synthetic data lives (default {SYNTHETIC_ROOT}/<settings>)")
    g.add_argument("--synthetic-ids", type=int_at_least(2), default=64, metavar="N", help="training (and test) identities")
    g.add_argument("--synthetic-images-per-id", type=int_at_least(3), default=12, metavar="N", help="images per identity")
    g.add_argument("--synthetic-cameras", type=int_at_least(1), choices=range(2, 7), default=6, metavar="2..6", help="cameras")
    g.add_argument("--synthetic-seed", type=seed, default=0, help="generator seed")


def data_flag_entries(args: argparse.Namespace, given: Container[str], section: str = "data"
                      ) -> list[tuple[str, object, str]]:
    """``(key, value, flag)`` config entries for the data flags given on the command line."""
    entries: list[tuple[str, object, str]] = []
    for dest, name in FLAG_FIELDS.items():
        if dest in given:
            value = getattr(args, dest)
            entries.append((f"{section}.{name}", str(value) if isinstance(value, Path) else value,
                            "--" + dest.replace("_", "-")))
    if "no_count_check" in given:
        entries.append((f"{section}.check_counts", not args.no_count_check, "--no-count-check"))
    return entries


def data_config_from_args(args: argparse.Namespace) -> DataConfig:
    from hwnas import _cli

    with _cli.options_named("DataConfig", {"root": "--data-root", "check_counts": "--no-count-check"}):
        return DataConfig(dataset=args.dataset, root=None if args.data_root is None else str(args.data_root),
                          check_counts=not args.no_count_check, synthetic=args.synthetic,
                          synthetic_ids=args.synthetic_ids, synthetic_images_per_id=args.synthetic_images_per_id,
                          synthetic_cameras=args.synthetic_cameras, synthetic_seed=args.synthetic_seed,
                          synthetic_dir=None if args.synthetic_dir is None else str(args.synthetic_dir))


def synthetic_settings(data: DataConfig | argparse.Namespace) -> dict:
    if isinstance(data, argparse.Namespace):
        data = data_config_from_args(data)
    return {"version": GENERATOR_VERSION, "num_ids": data.synthetic_ids, "images_per_id": data.synthetic_images_per_id,
            "num_cameras": data.synthetic_cameras, "image_size": [128, 64], "seed": data.synthetic_seed,
            "market_test_sizes": False}


def dataset_from_args(args: argparse.Namespace) -> ReIDDataset:
    """Open ``--data-root`` or generate/reuse the synthetic dataset described by the ``--synthetic-*`` options."""
    return dataset_from_config(data_config_from_args(args))


def dataset_from_config(data: DataConfig) -> ReIDDataset:
    """Open ``data.root`` with the ``data.dataset`` reader, or generate/reuse the synthetic set ``data`` describes."""
    from hwnas.errors import UsageError

    if not data.synthetic:
        if data.root is None:
            raise UsageError("no dataset given, --data-root, expected --data-root DIR, --synthetic, or data.root in "
                             "--config FILE.yaml")
        return build_dataset(data.dataset, data.root, check_counts=data.check_counts)
    s = synthetic_settings(data)
    name = f"market-ids{s['num_ids']}-k{s['images_per_id']}-c{s['num_cameras']}-s{s['seed']}"
    root = Path(data.synthetic_dir) if data.synthetic_dir else SYNTHETIC_ROOT / name
    marker = root / SYNTHETIC_MARKER
    if not marker.is_file():
        from hwnas import _cli

        _cli.check_output_dir(root, "--synthetic-dir")
        check_synthetic_size(s["num_ids"], s["images_per_id"], tuple(s["image_size"]), root,
                             counts_option="--synthetic-ids/--synthetic-images-per-id", out_option="--synthetic-dir")
        _generate_once(root, s)
    try:
        settings = json.loads(marker.read_text(encoding="utf-8")).get("settings")
    except (ValueError, AttributeError, OSError):
        settings = None
    if settings != s:
        raise DatasetError(f"synthetic data made with other settings or an older generator, {marker}, expected "
                           "the settings asked for: delete the folder or pass another --synthetic-dir")
    logger.info("using synthetic dataset %s", root)
    return Market1501(root)


def _generate_once(root: Path, s: dict) -> None:
    """Generate into a temporary sibling folder and rename it to ``root``, so a killed run never leaves half a
    dataset and two runs generating at once both end up reading one complete copy (the second rename loses). A link
    (or ``..``) is resolved first: the dataset goes into the folder it names, checked before generating."""
    root = Path(os.path.realpath(root))
    if root.exists() and any(root.iterdir()):
        raise DatasetError(f"folder has files but no {SYNTHETIC_MARKER}, {root}, expected a synthetic dataset "
                           "folder (or a new one: delete it or pass another --synthetic-dir)")
    generate_synthetic_market_atomic(root, concurrent_ok=True, num_ids=s["num_ids"], images_per_id=s["images_per_id"],
                                     num_cameras=s["num_cameras"], image_size=tuple(s["image_size"]), seed=s["seed"])
