"""``python -m hwnas.data <command>`` (``hwnas data``): generate a synthetic dataset, or inspect a dataset folder.

- ``synthetic``: write a synthetic Market-1501-format dataset (``--output DIR``).
- ``info``: read a dataset folder as a command would and print its counts (identities, images, cameras per split).
"""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from hwnas import _cli
from hwnas.data import synthetic
from hwnas.data._cli import add_dataset_argument
from hwnas.data.datasets import build_dataset

PROG = "python -m hwnas.data"


def _info_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", type=_cli.path, required=True, help="dataset folder")
    add_dataset_argument(p)
    p.add_argument("--no-count-check", action="store_true", help="accept a trimmed copy of a real dataset")


def _info(a: argparse.Namespace) -> int:
    ds = build_dataset(a.dataset, a.data_root, check_counts=not a.no_count_check)
    print(f"{a.dataset} at {ds.root}")
    for split in ("train", "query", "gallery"):
        items = getattr(ds, split)
        pids = {pid for _, pid, _ in items}
        cams = {cam for _, _, cam in items}
        print(f"  {split:8s} {len(items):6d} images  {len(pids):5d} identities  {len(cams)} cameras")
    return 0


@_cli.command
def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    parser = _cli.ArgumentParser(prog=prog, description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("synthetic", help="write a synthetic Market-1501-format dataset",
                       description=synthetic.__doc__)
    synthetic.add_arguments(s)
    i = sub.add_parser("info", help="print a dataset folder's counts")
    _info_arguments(i)
    args = parser.parse_args(argv)
    return synthetic.run(args) if args.command == "synthetic" else _info(args)


if __name__ == "__main__":
    raise SystemExit(main())
