"""``python -m hwnas.latency build|predict|calibrate|show|validate``: thin CLI over :mod:`hwnas.latency`."""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from dataclasses import asdict, replace
from pathlib import Path

from hwnas.latency.expected import load_table
from hwnas.latency.io import TABLES_DIR, read_table, save_table
from hwnas.errors import HwnasError
from hwnas.latency.composition import METHODS
from hwnas.latency.schema import DTYPES, NECKS, RUNTIMES, Setting


def _setting_args(p: argparse.ArgumentParser, batch: int) -> None:
    p.add_argument("--batch", type=int, default=batch, help=f"batch size (default {batch})")
    p.add_argument("--dtype", choices=DTYPES, default="fp32")
    p.add_argument("--resolution", type=int, nargs=2, default=(256, 128), metavar=("H", "W"))
    p.add_argument("--width", type=float, default=1.0, help="width multiplier beta")
    p.add_argument("--neck", choices=NECKS, default="fblneck")
    p.add_argument("--name", required=True, help="table name (the shipped-table name it is loaded by)")
    p.add_argument("--out", type=Path, help=f"output JSON (default {TABLES_DIR}/NAME.json)")
    p.add_argument("--json", action="store_true", help="print the table summary as JSON")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hwnas.latency", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="measure a table on this machine")
    _setting_args(b, batch=8)
    b.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    b.add_argument("--space", choices=("cnet", "cdnet", "both"), default="both")
    b.add_argument("--warmup", type=int, default=10)
    b.add_argument("--repeats", type=int, default=50, help="interleaved timing rounds per entry")
    b.add_argument("--threads", type=int, default=1, help="CPU threads (torch.set_num_threads); ignored on cuda")
    b.add_argument("--backend", default="eager", help="hwnas.ops backend to time (eager, triton, ...)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--timer", choices=("auto", "wall", "thread_cpu", "cuda_events"), default="auto",
                   help="auto: CUDA events on GPU, thread CPU time with 1 CPU thread, else wall time")
    b.add_argument("--runtime", choices=RUNTIMES, default="eager",
                   help="runtime each entry is timed on: eager PyTorch, hwnas's compiled cpp ops, or the block as an "
                        "ONNX graph in onnxruntime / openvino (default eager)")
    b.add_argument("--calibrate", type=int, default=0, metavar="N",
                   help="time N genotypes end to end and fit the table's composition (scale x sum + offset)")
    b.add_argument("--composition", choices=METHODS, default="affine", help="fit used with --calibrate")
    b.add_argument("--heap", choices=("steady", "default"), default="steady",
                   help="steady: keep freed memory in the heap (no page faults between forwards; default)")
    b.add_argument("--no-progress", action="store_true")
    p = sub.add_parser("predict", help="predict a table from a spec sheet with the roofline model")
    _setting_args(p, batch=128)
    p.add_argument("--spec", required=True, help="spec-sheet key (rtx2080, t4, v100, a100, h100, jetson-orin) or path")
    p.add_argument("--calibrate-on", help="measured table (name or path) to fit the efficiencies on")
    p.add_argument("--threads", type=int, help="CPU spec sheets only: thread count the table is meant for")
    c = sub.add_parser("calibrate", help="fit the roofline efficiencies to a measured table and report the fit")
    c.add_argument("--table", required=True)
    c.add_argument("--spec", required=True)
    c.add_argument("--json", action="store_true")
    s = sub.add_parser("show", help="print a table summary")
    s.add_argument("table", help="shipped name or path")
    s.add_argument("--json", action="store_true")
    v = sub.add_parser("validate", help="time random genotypes end to end against the table's sums")
    v.add_argument("--table", required=True)
    v.add_argument("--archs", type=int, default=20)
    v.add_argument("--space", choices=("cnet", "cdnet"), default="cdnet")
    v.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda if available, else cpu")
    v.add_argument("--warmup", type=int, default=5)
    v.add_argument("--repeats", type=int, default=30)
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--backend", default="eager")
    v.add_argument("--timer", choices=("auto", "wall", "thread_cpu", "cuda_events"),
                   help="default: the timer the (measured) table was built with")
    v.add_argument("--runtime", choices=RUNTIMES, help="default: the runtime the table was timed on")
    v.add_argument("--genotypes", nargs="+", metavar="G", help="time these genotypes (strings or JSON files) "
                   "instead of --archs random ones")
    v.add_argument("--out", type=Path, help="write the result JSON here (and a .md beside it)")
    v.add_argument("--json", action="store_true")
    v.add_argument("--no-progress", action="store_true")
    return parser


def _setting(args: argparse.Namespace) -> Setting:
    return Setting(args.batch, args.dtype, (args.resolution[0], args.resolution[1]), args.width, args.neck)


def _save_and_show(table, args: argparse.Namespace) -> int:
    from hwnas.latency.expected import LatencyTable
    from hwnas.latency.summary import format_table_summary, table_summary

    path = save_table(table, args.out or TABLES_DIR / f"{args.name}.json")
    info = table_summary(LatencyTable(table))
    print(json.dumps(dict(info, path=str(path)), indent=2) if args.json else f"{format_table_summary(info)}\nwrote {path}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from hwnas.latency.measure import MeasureConfig, build

    config = MeasureConfig(args.device, args.warmup, args.repeats, args.threads, args.backend, args.seed,
                           not args.no_progress, args.timer, args.runtime, args.heap, args.calibrate, args.composition)
    spaces = ("cnet", "cdnet") if args.space == "both" else (args.space,)
    return _save_and_show(build(_setting(args), config, args.name, spaces), args)


def _predict(args: argparse.Namespace) -> int:
    from hwnas.latency.predict import PRIOR, calibrate, load_spec, predict_table

    spec = load_spec(args.spec)
    cal = calibrate(read_table(args.calibrate_on), spec).calibration if args.calibrate_on else PRIOR
    setting = replace(_setting(args), threads=args.threads)
    return _save_and_show(predict_table(spec, setting, args.name, cal), args)


def _calibrate(args: argparse.Namespace) -> int:
    from hwnas.latency.predict import calibrate, load_spec

    fit = calibrate(read_table(args.table), load_spec(args.spec))
    if args.json:
        print(json.dumps(asdict(fit), indent=2))
    else:
        print(f"fit on {fit.entries} entries: MAPE {fit.mape * 100:.2f}%, max |error| {fit.max_abs_error * 100:.1f}%")
        print("\n".join(f"  {k} = {v}" for k, v in asdict(fit.calibration).items()))
    return 0


def _show(args: argparse.Namespace) -> int:
    from hwnas.latency.summary import format_table_summary, table_summary

    info = table_summary(load_table(args.table))
    print(json.dumps(info, indent=2) if args.json else format_table_summary(info))
    return 0


def _validate(args: argparse.Namespace, argv: list[str]) -> int:
    from hwnas.latency.summary import validation_markdown
    from hwnas.latency.validate import validate
    from hwnas._io import write_json_atomic

    from hwnas.space.presets import resolve_genotype

    genotypes = None if args.genotypes is None else [resolve_genotype(g, args.space) for g in args.genotypes]
    result = validate(load_table(args.table), args.archs, args.space, args.device, args.warmup, args.repeats,
                      args.seed, args.backend, not args.no_progress, args.timer, args.runtime, genotypes)
    command = "python -m hwnas.latency " + shlex.join(argv)
    if args.out:
        write_json_atomic(args.out, dict(result.to_dict(), command=command))
        args.out.with_suffix(".md").write_text(validation_markdown(result, command))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(f"{result.table} on {result.device}: {len(result.archs)} {result.space} genotypes, "
              f"MAPE {result.mape * 100:.2f}%, Spearman {result.spearman:.4f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "validate":
            return _validate(args, argv)
        return {"build": _build, "predict": _predict, "calibrate": _calibrate, "show": _show}[args.command](args)
    except HwnasError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
