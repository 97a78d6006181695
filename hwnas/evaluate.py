"""``python -m hwnas.evaluate``: score a training checkpoint on a dataset's query/gallery (Market-1501 protocol).

Prints rank-1/5/10, mAP and mINP and writes them (with the settings) as JSON into ``--output`` (default: the
checkpoint's folder): ``eval.json``, or ``eval-flip.json``, ``eval-rerank.json``, ... when the settings differ
from the defaults, so evaluations with different settings never overwrite one another. The resolved settings go
beside it as ``eval.config.yaml`` (``eval-flip.config.yaml``, ...), which ``--config`` reads back. Beside it too: the
CMC curve (``eval-cmc.png``) and, with ``--visualize-ranks N``, the ranked results of N queries
(``eval-ranks-01.png``, ...: each query's top-k gallery images bordered green for the same identity, red for
another; ranked by the Market-1501 protocol, which excludes same-camera images of the query's identity and junk
boxes).

Settings come from, lowest precedence first: the defaults, ``--config FILE.yaml`` (sections ``checkpoint``,
``data``, ``eval``), the flags given, and ``KEY=VALUE`` overrides (``eval.flip=true``). With no data given, the
data of the training run (``config.yaml`` beside the checkpoint) is used.
"""
from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from hwnas import _cli, _config
from hwnas._io import write_json_atomic
from hwnas._model_cli import checkpoint_epoch, checkpoint_input_size, load_checkpoint_model
from hwnas.data._cli import add_data_arguments, data_flag_entries, dataset_from_config
from hwnas.data.loaders import build_test_loader
from hwnas.errors import DatasetError, UsageError
from hwnas.evaluation.config import METRICS, EvalConfig, EvalRunConfig
from hwnas.evaluation.features import evaluate_model
from hwnas.models import check_input_size
from hwnas.training.config import TrainRunConfig

PROG = "python -m hwnas.evaluate"
_EVAL_FLAGS = {"batch_size", "num_workers", "flip", "rerank", "metric", "visualize_ranks", "topk"}


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    d = EvalConfig()
    p = _cli.ArgumentParser(prog=prog, description=__doc__)
    _cli.add_config(p, "checkpoint, data, eval")
    p.add_argument("--checkpoint", type=_cli.path, help="a last.pt written by hwnas train")
    add_data_arguments(p, required=False)
    _cli.add_output(p, "folder for the result JSON (default: the checkpoint's folder)")
    _cli.add_input_size(p, None, "input size HxW in pixels (default: the checkpoint's training size)")
    p.add_argument("--batch-size", type=_cli.positive_int, default=d.batch_size, help="images per inference batch")
    p.add_argument("--num-workers", type=_cli.num_workers, default=d.num_workers, help="DataLoader worker processes")
    p.add_argument("--flip", action="store_true", help="average features of each image and its mirror")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3)")
    p.add_argument("--metric", choices=METRICS, default=d.metric, help="feature distance")
    p.add_argument("--visualize-ranks", type=_cli.nonnegative_int, default=d.visualize_ranks, metavar="N",
                   help="draw the ranked results of N queries (evenly spaced over those with a true match)")
    p.add_argument("--topk", type=_cli.positive_int, default=d.topk,
                   help="gallery images per query in the ranked results")
    _cli.add_threads(p)
    _cli.add_device(p)
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    _cli.add_progress(p)
    return p


def flag_entries(a: argparse.Namespace, given: dict[str, str]) -> list[tuple[str, object, str]]:
    entries = data_flag_entries(a, given)
    for dest, flag in given.items():
        value = getattr(a, dest)
        if dest in _EVAL_FLAGS:
            entries.append((f"eval.{dest}", value, flag))
        elif dest == "input_size":
            entries += [("eval.height", value[0], flag), ("eval.width", value[1], flag)]
        elif dest == "no_amp":
            entries.append(("eval.amp", not value, flag))
        elif dest == "checkpoint":
            entries.append(("checkpoint", str(value), flag))
    return entries


def resolve_run(a: argparse.Namespace, given: dict[str, str]) -> EvalRunConfig:
    layers = [_config.file_layer(a.config)] if a.config is not None else []
    layers += [_config.flag_layer(flag_entries(a, given)), _config.override_layer(a.overrides)]
    run = _config.resolve(EvalRunConfig(), layers).config
    if run.checkpoint is None:
        raise UsageError("no checkpoint given, --checkpoint, expected a last.pt written by hwnas train (or "
                         "checkpoint: in --config)")
    trained = Path(run.checkpoint).parent / _config.CONFIG_NAME
    if not any(key.startswith("data.") for layer in layers for key in layer.keys()) and trained.is_file():
        # no data given: the data the checkpoint was trained on (the test split of the same dataset)
        data = _config.load_config(trained, TrainRunConfig()).data
        print(f"data: {data.source} {data.root or data.synthetic_dir or ''} (from {trained})")
        run = _config.resolve(EvalRunConfig(data=data), layers).config
    return run


def result_name(settings: EvalConfig | argparse.Namespace) -> str:
    """``eval.json`` for the default settings, else ``eval-<setting>-....json`` (flip, rerank, cosine)."""
    parts = [name for name, on in (("flip", settings.flip), ("rerank", settings.rerank),
                                   ("cosine", settings.metric == "cosine")) if on]
    return "-".join(["eval", *parts]) + ".json"


@_cli.command
def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    parser = build_parser(prog)
    a = parser.parse_intermixed_args(argv)
    run = resolve_run(a, _cli.given_options(parser, argv))
    ev, checkpoint = run.eval, Path(run.checkpoint)
    device = _cli.resolve_device(a.device)
    out_dir = _cli.check_output_dir(a.output if a.output is not None else checkpoint.parent)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    _cli.apply_threads(a.threads)
    model, ckpt = load_checkpoint_model(checkpoint, device)
    epoch = checkpoint_epoch(ckpt, checkpoint)
    if ev.height is not None:
        (height, width), option = (ev.height, ev.width), "--input-size"
    else:
        height, width = checkpoint_input_size(ckpt, checkpoint)
        option = f"config height/width of checkpoint '{checkpoint}'"
    options = {k: v for k, v in ckpt["model_options"].items() if k != "num_classes"}
    check_input_size(ckpt["model_name"], (height, width), option, **options)
    ds = dataset_from_config(run.data)
    kw = {"height": height, "width": width, "batch_size": ev.batch_size, "num_workers": ev.num_workers}
    r = evaluate_model(model, build_test_loader(ds.query, **kw), build_test_loader(ds.gallery, **kw), device=device,
                       flip=ev.flip, metric=ev.metric, rerank=ev.rerank, amp=ev.amp, progress=not a.no_progress,
                       keep_distmat=ev.visualize_ranks > 0)
    if not r["num_valid"]:
        raise DatasetError(f"no query has a true match in the gallery ({len(ds.query)} queries, all skipped), "
                           f"{ds.root}, expected query identities that also appear in the gallery under another "
                           "camera")
    result = {"checkpoint": str(checkpoint), "epoch": epoch, "model": ckpt["model_name"],
              "dataset": run.data.source, "data_root": str(ds.root),
              "height": height, "width": width, "flip": ev.flip, "rerank": ev.rerank, "metric": ev.metric,
              **{k: r[k] for k in ("rank1", "rank5", "rank10", "mAP", "mINP", "num_skipped", "num_valid",
                                   "num_nonfinite")},
              "cmc_top20": [float(v) for v in r["cmc"][:20]], "cmc": [float(v) for v in r["cmc"]]}
    name = result_name(ev)
    out = write_json_atomic(out_dir / name, result)
    _config.write_config(out_dir / name.replace(".json", ".config.yaml"), run,
                         f"hwnas evaluate: the resolved settings of {name}")
    print(f"{ckpt['model_name']} epoch {result['epoch']} on {result['dataset']} ({len(ds.query)} query, "
          f"{len(ds.gallery)} gallery): rank-1 {100 * r['rank1']:.2f}%  rank-5 {100 * r['rank5']:.2f}%  "
          f"rank-10 {100 * r['rank10']:.2f}%  mAP {100 * r['mAP']:.2f}%  mINP {100 * r['mINP']:.2f}%")
    if r["num_nonfinite"]:
        print(f"warning: {r['num_nonfinite']} distances were NaN or infinite (non-finite features); they ranked last")
    print(f"wrote {out}")
    for path in write_figures(result, r, ds, out_dir, out.stem, ev.visualize_ranks, ev.topk):
        print(f"wrote {path}")
    if ev.visualize_ranks > r["num_valid"]:
        print(f"note: --visualize-ranks {ev.visualize_ranks}, but only {r['num_valid']} queries have a true match; "
              "drew those")
    return 0


def write_figures(result: dict, scores: dict, ds, out_dir: Path, stem: str, num_queries: int, topk: int) -> list[Path]:
    """``<stem>-cmc.png`` and, for ``num_queries`` > 0, the ranked-results pages ``<stem>-ranks-NN.png``."""
    from hwnas.viz.cmc import plot_cmc
    from hwnas.viz.ranks import write_ranked_results
    from hwnas.viz.redraw import evaluation_label

    label = evaluation_label(result)
    paths = [plot_cmc(result["cmc"], out_dir / f"{stem}-cmc.png", label=label, mAP=result["mAP"],
                      mINP=result["mINP"])]
    if num_queries:
        title = f"{label}: rank-1 {100 * result['rank1']:.1f}%, mAP {100 * result['mAP']:.1f}%"
        paths += write_ranked_results(scores["distmat"], ds.query, ds.gallery, out_dir, stem, num_queries, topk,
                                      title=title)
    return paths


if __name__ == "__main__":
    raise SystemExit(main())
