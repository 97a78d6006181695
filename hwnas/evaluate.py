"""``python -m hwnas.evaluate``: score a training checkpoint on a dataset's query/gallery (Market-1501 protocol).

Prints rank-1/5/10, mAP and mINP and writes them (with the settings) as JSON to ``--out``.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch

from hwnas.data._cli import add_data_arguments, dataset_from_args
from hwnas.data.loaders import build_test_loader
from hwnas.evaluation.features import evaluate_model
from hwnas._io import write_json_atomic
from hwnas.training.checkpoint import model_from_checkpoint


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m hwnas.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="a last.pt written by python -m hwnas.train")
    add_data_arguments(p)
    p.add_argument("--out", default=None, help="result JSON (default: next to the checkpoint, eval.json)")
    p.add_argument("--height", type=int, default=None, help="input height (default: the checkpoint's)")
    p.add_argument("--width", type=int, default=None, help="input width (default: the checkpoint's)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--flip", action="store_true", help="average features of each image and its mirror")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3)")
    p.add_argument("--metric", choices=("euclidean", "cosine"), default="euclidean")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: torch's choice; 1 is much faster on a busy machine)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-amp", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if a.device == "auto" else a.device))
    model, ckpt = model_from_checkpoint(a.checkpoint, device)
    train_cfg = ckpt.get("config", {})
    height = a.height or int(train_cfg.get("height", 256))
    width = a.width or int(train_cfg.get("width", 128))
    ds = dataset_from_args(a)
    kw = {"height": height, "width": width, "batch_size": a.batch_size, "num_workers": a.num_workers}
    r = evaluate_model(model, build_test_loader(ds.query, **kw), build_test_loader(ds.gallery, **kw), device=device,
                       flip=a.flip, metric=a.metric, rerank=a.rerank, amp=not a.no_amp, progress=True)
    result = {"checkpoint": str(a.checkpoint), "epoch": int(ckpt["epoch"]), "model": ckpt["model_name"],
              "dataset": "synthetic" if a.synthetic else a.dataset, "data_root": str(ds.root),
              "height": height, "width": width, "flip": a.flip, "rerank": a.rerank, "metric": a.metric,
              **{k: r[k] for k in ("rank1", "rank5", "rank10", "mAP", "mINP", "num_skipped", "num_valid")},
              "cmc_top20": [float(v) for v in r["cmc"][:20]]}
    out = Path(a.out) if a.out else Path(a.checkpoint).with_name("eval.json")
    write_json_atomic(out, result)
    print(f"{ckpt['model_name']} epoch {result['epoch']} on {result['dataset']} ({len(ds.query)} query, "
          f"{len(ds.gallery)} gallery): rank-1 {100 * r['rank1']:.2f}%  rank-5 {100 * r['rank5']:.2f}%  "
          f"rank-10 {100 * r['rank10']:.2f}%  mAP {100 * r['mAP']:.2f}%  mINP {100 * r['mINP']:.2f}%")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
