"""Command-line options shared by train / evaluate / report tsne: a real dataset folder or a synthetic one."""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from hwnas.data.datasets import DATASETS, DatasetError, SYNTHETIC_MARKER, Market1501, ReIDDataset, build_dataset
from hwnas.data.synthetic import GENERATOR_VERSION, generate_synthetic_market

logger = logging.getLogger(__name__)

SYNTHETIC_ROOT = Path("runs") / "synthetic"


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    from hwnas._cli import int_at_least

    g = parser.add_argument_group("data (a dataset folder, or --synthetic)")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--data-root", type=Path, help="dataset folder (e.g. .../Market-1501-v15.09.15 or its parent)")
    src.add_argument("--synthetic", action="store_true",
                     help="generate (once, then reuse) a synthetic Market-1501-format dataset")
    g.add_argument("--dataset", choices=sorted(DATASETS), default="market1501", help="layout of --data-root")
    g.add_argument("--no-count-check", action="store_true", help="accept a trimmed copy of a real dataset")
    g.add_argument("--synthetic-dir", type=Path, default=None,
                   help=f"where synthetic data lives (default {SYNTHETIC_ROOT}/<settings>)")
    g.add_argument("--synthetic-ids", type=int_at_least(2), default=64, help="training (and test) identities")
    g.add_argument("--synthetic-images-per-id", type=int_at_least(2), default=12, help="images per identity")
    g.add_argument("--synthetic-cameras", type=int_at_least(2), default=6, help="cameras")
    g.add_argument("--synthetic-seed", type=int, default=0, help="generator seed")


def synthetic_settings(args: argparse.Namespace) -> dict:
    return {"version": GENERATOR_VERSION, "num_ids": args.synthetic_ids, "images_per_id": args.synthetic_images_per_id,
            "num_cameras": args.synthetic_cameras, "image_size": [128, 64], "seed": args.synthetic_seed,
            "market_test_sizes": False}


def dataset_from_args(args: argparse.Namespace) -> ReIDDataset:
    """Open ``--data-root`` or generate/reuse the synthetic dataset described by the ``--synthetic-*`` options."""
    if not args.synthetic:
        return build_dataset(args.dataset, args.data_root, check_counts=not args.no_count_check)
    s = synthetic_settings(args)
    name = f"market-ids{s['num_ids']}-k{s['images_per_id']}-c{s['num_cameras']}-s{s['seed']}"
    root = Path(args.synthetic_dir) if args.synthetic_dir else SYNTHETIC_ROOT / name
    marker = root / SYNTHETIC_MARKER
    if marker.is_file():
        try:
            settings = json.loads(marker.read_text(encoding="utf-8")).get("settings")
        except (ValueError, AttributeError):
            settings = None
        if settings != s:
            raise DatasetError(f"synthetic data made with other settings or an older generator, {marker}, expected "
                               "the settings asked for: delete the folder or pass another --synthetic-dir")
        logger.info("reusing synthetic dataset %s", root)
    else:
        generate_synthetic_market(root, num_ids=s["num_ids"], images_per_id=s["images_per_id"],
                                  num_cameras=s["num_cameras"], image_size=tuple(s["image_size"]), seed=s["seed"])
    return Market1501(root)
