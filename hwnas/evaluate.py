"""``python -m hwnas.evaluate``: score a training checkpoint on a dataset's query/gallery (Market-1501 protocol).

Prints rank-1/5/10, mAP and mINP and writes them (with the settings) as JSON into ``--output`` (default: the
checkpoint's folder): ``eval.json``, or ``eval-flip.json``, ``eval-rerank.json``, ... when the settings differ
from the defaults, so evaluations with different settings never overwrite one another.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from hwnas import _cli
from hwnas._io import write_json_atomic
from hwnas.data._cli import add_data_arguments, dataset_from_args
from hwnas.data.loaders import build_test_loader
from hwnas.errors import DatasetError
from hwnas.evaluation.features import evaluate_model
from hwnas.models import check_input_size
from hwnas.training.checkpoint import model_from_checkpoint

PROG = "python -m hwnas.evaluate"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = _cli.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("--checkpoint", type=Path, required=True, help="a last.pt written by hwnas train")
    add_data_arguments(p)
    _cli.add_output(p, "folder for the result JSON (default: the checkpoint's folder)")
    _cli.add_input_size(p, None, "input size HxW in pixels (default: the checkpoint's training size)")
    p.add_argument("--batch-size", type=_cli.positive_int, default=128, help="images per inference batch")
    p.add_argument("--num-workers", type=_cli.nonnegative_int, default=0, help="DataLoader worker processes")
    p.add_argument("--flip", action="store_true", help="average features of each image and its mirror")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3)")
    p.add_argument("--metric", choices=("euclidean", "cosine"), default="euclidean", help="feature distance")
    _cli.add_threads(p)
    _cli.add_device(p)
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    return p


def result_name(a: argparse.Namespace) -> str:
    """``eval.json`` for the default settings, else ``eval-<setting>-....json`` (flip, rerank, cosine)."""
    parts = [name for name, on in (("flip", a.flip), ("rerank", a.rerank), ("cosine", a.metric == "cosine")) if on]
    return "-".join(["eval", *parts]) + ".json"


@_cli.command
def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    a = build_parser(prog).parse_args(argv)
    device = _cli.resolve_device(a.device)
    out_dir = _cli.check_output_dir(a.output if a.output is not None else a.checkpoint.parent)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    _cli.apply_threads(a.threads)
    model, ckpt = model_from_checkpoint(a.checkpoint, device)
    train_cfg = ckpt.get("config", {})
    height, width = a.input_size or (int(train_cfg.get("height", 256)), int(train_cfg.get("width", 128)))
    options = {k: v for k, v in ckpt["model_options"].items() if k != "num_classes"}
    check_input_size(ckpt["model_name"], (height, width), **options)
    ds = dataset_from_args(a)
    kw = {"height": height, "width": width, "batch_size": a.batch_size, "num_workers": a.num_workers}
    r = evaluate_model(model, build_test_loader(ds.query, **kw), build_test_loader(ds.gallery, **kw), device=device,
                       flip=a.flip, metric=a.metric, rerank=a.rerank, amp=not a.no_amp, progress=True)
    if not r["num_valid"]:
        raise DatasetError(f"no query has a true match in the gallery ({len(ds.query)} queries, all skipped), "
                           f"{ds.root}, expected query identities that also appear in the gallery under another "
                           "camera")
    result = {"checkpoint": str(a.checkpoint), "epoch": int(ckpt["epoch"]), "model": ckpt["model_name"],
              "dataset": "synthetic" if a.synthetic else a.dataset, "data_root": str(ds.root),
              "height": height, "width": width, "flip": a.flip, "rerank": a.rerank, "metric": a.metric,
              **{k: r[k] for k in ("rank1", "rank5", "rank10", "mAP", "mINP", "num_skipped", "num_valid")},
              "cmc_top20": [float(v) for v in r["cmc"][:20]]}
    out = write_json_atomic(out_dir / result_name(a), result)
    print(f"{ckpt['model_name']} epoch {result['epoch']} on {result['dataset']} ({len(ds.query)} query, "
          f"{len(ds.gallery)} gallery): rank-1 {100 * r['rank1']:.2f}%  rank-5 {100 * r['rank5']:.2f}%  "
          f"rank-10 {100 * r['rank10']:.2f}%  mAP {100 * r['mAP']:.2f}%  mINP {100 * r['mINP']:.2f}%")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
