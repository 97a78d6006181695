"""``python -m hwnas.latency build|predict|calibrate|show|validate``: thin CLI over :mod:`hwnas.latency`."""
from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path

from hwnas import _cli
from hwnas.errors import UsageError
from hwnas.latency.composition import METHODS
from hwnas.latency.expected import LatencyTable, load_table
from hwnas.latency.io import check_table_name, read_table, save_table, shipped_tables, user_tables_dir
from hwnas.latency.schema import DTYPES, NECKS, RUNTIMES, Setting, from_dict, to_dict
from hwnas.models import check_input_size


def _setting_args(p: argparse.ArgumentParser, batch: int) -> None:
    p.add_argument("--batch-size", type=_cli.positive_int, default=batch, help="batch size the table is for")
    p.add_argument("--dtype", choices=DTYPES, default="fp32", help="data type the table is for")
    _cli.add_input_size(p, (256, 128), "input size HxW in pixels the table is for")
    p.add_argument("--width-mult", type=_cli.width_mult, default=1.0, help="width multiplier beta")
    p.add_argument("--neck", choices=NECKS, default="fblneck", help="neck timed in the fixed part")
    p.add_argument("--name", required=True, help="table name (what --latency-table NAME loads)")
    _cli.add_output(p, "folder for NAME.json (default: the user tables folder, "
                       f"{user_tables_dir()}; --latency-table NAME looks there first)")
    p.add_argument("--json", action="store_true", help="print the table summary as JSON")


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = _cli.ArgumentParser(prog=prog, description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="measure a table on this machine")
    _setting_args(b, batch=8)
    b.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device to time on")
    b.add_argument("--space", choices=("cnet", "cdnet", "both"), default="both", help="search space(s) to time")
    b.add_argument("--warmup", type=_cli.nonnegative_int, default=10, help="untimed calls per entry")
    b.add_argument("--repeats", type=_cli.int_at_least(3), default=50, help="interleaved timing rounds per entry")
    _cli.add_threads(b, default=1, help="CPU threads (torch.set_num_threads); ignored on cuda")
    b.add_argument("--backend", default="eager", help="hwnas.ops backend to time (eager, triton, ...)")
    _cli.add_seed(b)
    b.add_argument("--timer", choices=("auto", "wall", "thread_cpu", "cuda_events"), default="auto",
                   help="auto: CUDA events on GPU, thread CPU time with 1 CPU thread, else wall time")
    b.add_argument("--runtime", choices=RUNTIMES, default="eager",
                   help="runtime each entry is timed on: eager PyTorch, hwnas's compiled cpp ops, or the block as an "
                        "ONNX graph in onnxruntime / openvino")
    b.add_argument("--calibrate", type=_cli.nonnegative_int, default=6,
                   help="genotypes timed end to end to fit the table's composition (scale x sum + offset); 0: none")
    b.add_argument("--composition", choices=METHODS, default="affine", help="fit used with --calibrate")
    b.add_argument("--heap", choices=("steady", "default"), default="steady",
                   help="steady: freed memory stays in the heap, no page faults between forwards (glibc mallopt)")
    _cli.add_progress(b)
    p = sub.add_parser("predict", help="predict a table from a spec sheet with the roofline model")
    _setting_args(p, batch=128)
    p.add_argument("--spec", required=True, help="spec-sheet key (rtx2080, t4, v100, a100, h100, jetson-orin) or path")
    p.add_argument("--calibrate-on", type=_cli.table_ref, metavar="NAME|PATH", help="measured table to fit the efficiencies on")
    _cli.add_threads(p, help="CPU spec sheets only: thread count the table is meant for")
    c = sub.add_parser("calibrate", help="fit the roofline efficiencies to a measured table and report the fit")
    c.add_argument("--table", required=True, type=_cli.table_ref, metavar="NAME|PATH", help="measured table")
    c.add_argument("--spec", required=True, help="spec-sheet key or path")
    c.add_argument("--json", action="store_true", help="print the fit as JSON")
    s = sub.add_parser("show", help="print a table summary")
    s.add_argument("table", type=_cli.table_ref, metavar="NAME|PATH", help="table name or path")
    s.add_argument("--json", action="store_true", help="print the summary as JSON")
    v = sub.add_parser("validate", help="time random genotypes end to end against the table's sums")
    v.add_argument("--table", required=True, type=_cli.table_ref, metavar="NAME|PATH", help="table name or path")
    v.add_argument("--archs", type=_cli.int_at_least(2), default=20, help="random genotypes to time")
    v.add_argument("--space", choices=("cnet", "cdnet"), default="cdnet", help="search space of the genotypes")
    v.add_argument("--device", choices=("cpu", "cuda"), help="device to time on (default: cuda if available, else cpu)")
    v.add_argument("--warmup", type=_cli.nonnegative_int, default=5, help="untimed calls per genotype")
    v.add_argument("--repeats", type=_cli.int_at_least(3), default=30, help="timing rounds")
    _cli.add_seed(v)
    v.add_argument("--backend", default="eager", help="hwnas.ops backend to time")
    v.add_argument("--timer", choices=("auto", "wall", "thread_cpu", "cuda_events"),
                   help="default: the timer the (measured) table was built with")
    v.add_argument("--runtime", choices=RUNTIMES, help="runtime to time on (default: the one the table was timed on)")
    v.add_argument("--genotypes", nargs="+", metavar="G",
                   help="time these genotypes (presets, strings or JSON files) instead of --archs random ones")
    _cli.add_threads(v, help="CPU threads (default: the table's thread count, else torch's choice)")
    _cli.add_output(v, "folder for validation.json, validation.md and validation.png (predicted vs measured) "
                       "(default: print only)")
    v.add_argument("--json", action="store_true", help="print the result as JSON")
    _cli.add_progress(v)
    return parser


def _setting(args: argparse.Namespace) -> Setting:
    check_table_name(args.name)
    h, w = args.input_size
    if h % 16 or w % 16:
        raise UsageError(f"input size {h}x{w}, --input-size, expected multiples of 16 (the network's feature maps "
                         "must divide evenly: 256x128, 128x64, 64x32, ...)")
    check_input_size("cdnet", args.input_size, width_mult=args.width_mult)
    return Setting(args.batch_size, args.dtype, tuple(args.input_size), args.width_mult, args.neck)


def _table_path(args: argparse.Namespace) -> Path:
    if args.output is not None:
        folder = _cli.check_output_dir(args.output)
    else:  # the user tables folder: $HWNAS_HOME, $XDG_DATA_HOME or ~/.local/share (checked before measuring)
        folder = _cli.check_output_dir(user_tables_dir(), "the user tables folder (HWNAS_HOME; or pass --output)")
    return folder / f"{args.name}.json"


def _save_and_show(table, args: argparse.Namespace) -> int:
    from hwnas.latency.summary import format_table_summary, table_summary

    path = _table_path(args)
    from_dict(to_dict(table), f"latency table {args.name!r} before writing {path}")  # never save what loading refuses
    path = save_table(table, path)
    info = table_summary(LatencyTable(table))
    print(json.dumps(dict(info, path=str(path)), indent=2) if args.json else f"{format_table_summary(info)}\nwrote {path}")
    if args.output is None and args.name in shipped_tables():
        print(f"note: the user table {path} now shadows the shipped table {args.name!r}: --latency-table "
              f"{args.name} loads it from now on (delete it to use the shipped one again)", file=sys.stderr)
    return 0


def _build(args: argparse.Namespace) -> int:
    from hwnas.latency.measure import MeasureConfig, build

    setting = _setting(args)
    _table_path(args)
    if args.device == "cuda":
        _cli.resolve_device("cuda")

    config = MeasureConfig(args.device, args.warmup, args.repeats, args.threads, args.backend, args.seed,
                           not args.no_progress, args.timer, args.runtime, args.heap, args.calibrate, args.composition)
    spaces = ("cnet", "cdnet") if args.space == "both" else (args.space,)
    return _save_and_show(build(setting, config, args.name, spaces), args)


def _predict(args: argparse.Namespace) -> int:
    from hwnas.latency.predict import PRIOR, calibrate, load_spec, predict_table

    setting = replace(_setting(args), threads=args.threads)
    _table_path(args)
    spec = load_spec(args.spec)
    if args.threads is not None and spec.kind != "cpu":
        raise UsageError(f"--threads {args.threads} with a {spec.kind} spec sheet, --threads, expected a CPU spec sheet "
                         f"(the thread count applies to CPU tables only; drop --threads for {args.spec})")
    cal = calibrate(read_table(args.calibrate_on), spec).calibration if args.calibrate_on else PRIOR
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
    from hwnas._io import write_json_atomic, write_text_atomic
    from hwnas.latency.summary import validation_markdown
    from hwnas.latency.validate import validate
    from hwnas.space.presets import resolve_genotype

    if args.device == "cuda":
        _cli.resolve_device("cuda")
    if args.output is not None:
        _cli.check_output_dir(args.output)
    genotypes = None if args.genotypes is None else [resolve_genotype(g, args.space) for g in args.genotypes]
    result = validate(load_table(args.table), args.archs, args.space, args.device, args.warmup, args.repeats,
                      args.seed, args.backend, not args.no_progress, args.timer, args.runtime, genotypes,
                      args.threads)
    command = "python -m hwnas.latency " + shlex.join(argv)
    if args.output is not None:
        from hwnas.viz.latency import FILENAME, plot_latency_validation

        payload = dict(result.to_dict(), command=command)
        written = [write_json_atomic(args.output / "validation.json", payload),
                   write_text_atomic(args.output / "validation.md", validation_markdown(result, command)),
                   plot_latency_validation(payload, args.output / FILENAME)]
        print("wrote " + ", ".join(map(str, written)), file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(f"{result.table} on {result.device}: {len(result.archs)} {result.space} genotypes, "
              f"MAPE {result.mape * 100:.2f}%, Spearman {result.spearman:.4f}")
    return 0


@_cli.command
def main(argv: Sequence[str] | None = None, *, prog: str = "python -m hwnas.latency") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "validate":
        return _validate(args, argv)
    return {"build": _build, "predict": _predict, "calibrate": _calibrate, "show": _show}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
