"""Reproduce the seed's Table 5 inference-timing protocol for any list of models.

``python -m benchmarks.inference_time [--data-root MARKET] [--models a,b] [--num-images N] [--runs R] ...``

Times inference over the Market-1501 test set (3,368 query + 15,913 gallery images) at batch 128:
JPEG decoding and transforms through a DataLoader, host-to-device copies, the forward pass and the
ranking step, mean and spread over runs after a warm-up. Without ``--data-root`` it generates (once,
cached) a synthetic folder with Market-1501's test-set sizes. Prints an aligned table and writes
``results.json``, ``results.md`` and ``inference_time.png`` to ``--output``, each with the device,
software versions and command, beside the paper's RTX 2080 times and the ``--latency-table`` prediction.
See docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import math
import os
import sys
from pathlib import Path
from typing import Sequence

import torch

import hwnas
from benchmarks._protocol import (
    BACKENDS,
    DTYPES,
    ModelResult,
    ProtocolConfig,
    benchmark_model,
    select_test_items,
    warm_file_cache,
)
from benchmarks._report import (
    PAPER_TABLE5,
    Prediction,
    aligned_table,
    build_rows,
    environment,
    predict_forward,
    write_outputs,
)
from hwnas import _cli
from hwnas.data import Market1501, generate_synthetic_market
from hwnas.data.datasets import SYNTHETIC_MARKER
from hwnas.errors import UsageError
from hwnas.models._limits import check_input_size

logger = logging.getLogger("benchmarks.inference_time")

DEFAULT_MODELS = ("resnet50_bot", "osnet", "gdas", "cdnet")


def default_synthetic_dir() -> Path:
    """Where the generated Market-1501-sized test folder is cached (``$HWNAS_CACHE`` or ``~/.cache/hwnas``)."""
    base = Path(os.environ.get("HWNAS_CACHE", Path.home() / ".cache" / "hwnas"))
    return base / "synthetic-market1501-testsize"


def load_test_set(data_root: str | None, synthetic_dir: Path) -> tuple[Market1501, str]:
    """Market-1501 at ``data_root``, or the synthetic one with Market-1501's test sizes (generated if missing)."""
    if data_root is not None:
        return Market1501(data_root), f"Market-1501 at {data_root}"
    if not (synthetic_dir / SYNTHETIC_MARKER).is_file():
        logger.info("generating a synthetic Market-1501-sized test set at %s (once; takes a few minutes)",
                    synthetic_dir)
        generate_synthetic_market(synthetic_dir, num_ids=1, images_per_id=3, market_test_sizes=True)
    return Market1501(synthetic_dir), f"synthetic Market-1501-sized set at {synthetic_dir}"


def model_counts(model: torch.nn.Module, height: int, width: int) -> tuple[float, float]:
    """(inference params M, conv+linear MFLOPs at batch 1) in the paper's convention."""
    from hwnas.profile import profile_model

    prof = profile_model(model, (height, width), scope="inference")
    return prof.params_m, prof.flops_m


def run_benchmark(models: Sequence[str], query: list, gallery: list, cfg: ProtocolConfig, latency_table: str,
                  seed: int = 0) -> tuple[list[ModelResult], dict[str, Prediction]]:
    """Count, predict and time each model (weights as created with ``seed``)."""
    warm_file_cache(query + gallery)
    results, predictions = [], {}
    for name in models:
        torch.manual_seed(seed)
        model = hwnas.create_model(name)
        counts = model_counts(model, cfg.height, cfg.width)
        predictions[name] = predict_forward(model, latency_table, len(query) + len(gallery), cfg)
        logger.info("%s: %.2fM params, %.1f MFLOPs; prediction %s", name, *counts, predictions[name].note)
        results.append(benchmark_model(name, query, gallery, cfg, counts, model=model))
    return results, predictions


def _clean(x: object) -> object:
    """NaN -> None so that results.json is strict JSON."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def build_parser() -> argparse.ArgumentParser:
    p = _cli.ArgumentParser(prog="python -m benchmarks.inference_time", description=__doc__.splitlines()[0])
    p.add_argument("--data-root", metavar="PATH", help="Market-1501 folder (default: a generated one with the same test sizes)")
    p.add_argument("--synthetic-dir", type=_cli.path, default=None,
                   help=f"cache folder for the generated test set (default {default_synthetic_dir()})")
    p.add_argument("--models", default=",".join(DEFAULT_MODELS),
                   help="comma-separated registered models (default: the seed's Table 5 models)")
    p.add_argument("--reference", default="cdnet", help="model the ratios divide by (default cdnet)")
    p.add_argument("--num-images", type=_cli.int_at_least(2), default=None, help="time an evenly spaced subset of the test set")
    p.add_argument("--runs", type=_cli.positive_int, default=5, help="timed runs per model (default 5, as the seed)")
    p.add_argument("--warmup", type=_cli.nonnegative_int, default=3, help="warm-up forward passes per batch shape")
    p.add_argument("--batch-size", type=_cli.positive_int, default=128, help="images per inference batch")
    _cli.add_device(p)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="model and input dtype")
    p.add_argument("--backend", default="eager",
                   help=f"{', '.join(BACKENDS)}: eager PyTorch, torch.compile of it, or the hwnas.ops triton kernels "
                        "(any registered hwnas.ops backend name works)")
    p.add_argument("--channels-last", action="store_true", help="channels-last memory format for model and input")
    p.add_argument("--workers", type=_cli.num_workers, default=4, help="DataLoader worker processes (the seed used 4)")
    p.add_argument("--threads", type=_cli.int_at_least(1, _cli.MAX_THREADS), default=None, help="torch CPU threads (default: torch's choice)")
    _cli.add_input_size(p, (256, 128), "input size HxW in pixels (the seed times 256x128)")
    p.add_argument("--latency-table", default="rtx2080", metavar="NAME|PATH", help="table whose forward-time prediction is shown")
    _cli.add_seed(p)
    p.add_argument("--output", type=_cli.path, default=None,
                   help="output folder (default benchmarks/results/run-<UTC time>)")
    return p


@_cli.command
def main(argv: Sequence[str] | None = None, *, prog: str = "python -m benchmarks.inference_time") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in hwnas.list_models()]
    if not models or unknown:
        raise UsageError(f"unknown model(s) {', '.join(unknown) or '(none given)'}, --models, expected "
                         f"registered models: {', '.join(hwnas.list_models())}")
    if args.reference not in models:
        raise UsageError(f"reference model {args.reference!r} is not timed, --reference, expected one of --models "
                         f"({', '.join(models)})")
    from hwnas.latency import load_table

    load_table(args.latency_table)  # a missing or malformed table is an error now, not an 'n/a' after the run
    if args.output is not None:
        _cli.check_output_dir(args.output)
    device = _cli.resolve_device(args.device)
    for name in models:
        check_input_size(name, args.input_size, "--input-size")
    _cli.apply_threads(args.threads)
    cfg = ProtocolConfig(device=str(device), dtype=args.dtype, backend=args.backend, channels_last=args.channels_last,
                         batch_size=args.batch_size, workers=args.workers, runs=args.runs, warmup=args.warmup,
                         height=args.input_size[0], width=args.input_size[1])
    env = environment(cfg, argv)  # at the start: the commit and the load the run began with
    dataset, source = load_test_set(args.data_root, args.synthetic_dir or default_synthetic_dir())
    query, gallery = select_test_items(dataset.query, dataset.gallery, args.num_images)
    results, predictions = run_benchmark(models, query, gallery, cfg, args.latency_table, args.seed)
    env["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    reference = args.reference
    rows = build_rows(results, predictions, reference)
    payload = _clean({"protocol": "seed Table 5", "dataset": source, "config": dataclasses.asdict(cfg),
                      "reference": reference, "latency_table": args.latency_table,
                      "environment": env, "results": rows,
                      "paper": {k: dataclasses.asdict(v) for k, v in PAPER_TABLE5.items()}})
    out = args.output or Path("benchmarks/results") / dt.datetime.now(dt.timezone.utc).strftime("run-%Y%m%dT%H%M%SZ")
    print(aligned_table(payload["results"]))
    paths = write_outputs(payload, out)
    print(f"device: {payload['environment']['device']}; wrote {', '.join(str(p) for p in paths.values())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
