"""Latency tables per runtime and setting, each built and then validated right away under the same conditions.

    python -m benchmarks.latency_runtimes                     # 3 settings x (eager, onnxruntime): issue 14's targets
    python -m benchmarks.latency_runtimes --settings 1,256x128,1.0 --runtimes cpp,openvino

For every (setting, runtime) it runs, as separate processes, exactly these commands (1 thread, thread CPU time)::

    python -m hwnas.latency build --runtime R --batch-size B --input-size HxW --width-mult W --space cdnet \\
        --threads 1 --repeats 40 --calibrate 6 --name NAME --output OUT --no-progress
    python -m hwnas.latency validate --table OUT/NAME.json --archs 20 --repeats 30 --output OUT/NAME-validate

and writes OUT/summary.md: MAPE and Spearman of the 20 random genotypes (never the 6 calibration genotypes),
the fitted composition, the same 20 genotypes' error of the raw sums (no composition), and the load.
Run it on a quiet machine (``/work/coord/heavy --exclusive`` on the shared build machine).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._device import markdown_table, write_text_atomic
from hwnas import _cli
from hwnas.envinfo import device_name, machine_load, software_versions
from hwnas.errors import HwnasError, UsageError
from hwnas.latency.validate import mape_spearman

OUT = Path("runs") / "benchmarks" / "latency_runtimes"  # not benchmarks/results/: never over recorded results
SETTINGS = ("8,64x32,0.5", "4,128x64,1.0", "1,256x128,1.0")


def table_name(runtime: str, batch: int, size: str, width: float) -> str:
    return f"{runtime}-b{batch}-{size}-w{width}"


def run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    status = subprocess.run(cmd, check=False).returncode
    if status != 0:
        raise HwnasError(f"a step failed with status {status} (its error is above), {' '.join(cmd)}, expected status 0")


def setting(text: str) -> str:
    """argparse type: ``B,HxW,WIDTH`` (batch >= 1, sides multiples of 16, width > 0), returned as given."""
    try:
        batch, size, width = text.split(",")
        b, (h, w), beta = int(batch), _cli.input_size(size), _cli.positive_float(width)
    except (ValueError, argparse.ArgumentTypeError):
        b, h, w, beta = 0, 0, 0, 0.0
    if b < 1 or h % 16 or w % 16 or h < 32 or w < 32 or not beta > 0:
        raise argparse.ArgumentTypeError(f"bad value {text!r}, expected BATCH,HxW,WIDTH like 8,64x32,0.5 (batch >= 1, "
                                         "sides multiples of 16 and >= 32, width > 0)")
    return text


def runtimes(text: str) -> list[str]:
    """argparse type: distinct comma-separated names of hwnas.deploy.RUNTIMES."""
    from hwnas.deploy import RUNTIMES

    names = [n.strip() for n in text.split(",")]
    if not names or any(n not in RUNTIMES for n in names) or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"bad value {text!r}, expected distinct comma-separated runtimes from "
                                         f"{', '.join(RUNTIMES)}")
    return names


def one(runtime: str, setting: str, args: argparse.Namespace) -> list[str]:
    batch, size, width = setting.split(",")
    name = table_name(runtime, int(batch), size, float(width))
    out: Path = args.output
    build = [sys.executable, "-m", "hwnas.latency", "build", "--runtime", runtime, "--batch-size", batch,
             "--input-size", size, "--width-mult", width, "--space", "cdnet", "--threads", "1",
             "--repeats", str(args.build_repeats), "--calibrate", str(args.calibrate), "--name", name,
             "--output", str(out), "--no-progress"]
    validate = [sys.executable, "-m", "hwnas.latency", "validate", "--table", str(out / f"{name}.json"),
                "--archs", str(args.archs), "--repeats", str(args.validate_repeats),
                "--output", str(out / f"{name}-validate"), "--no-progress"]
    start = time.time()
    run(build)
    run(validate)
    table = json.loads((out / f"{name}.json").read_text())
    result = json.loads((out / f"{name}-validate" / "validation.json").read_text())
    comp = table.get("composition", {"method": "none", "scale": 1.0, "offset_ms": 0.0})
    raw_mape, raw_rho = mape_spearman([a["raw_sum_ms"] for a in result["archs"]],
                                      [a["measured_ms"] for a in result["archs"]])
    det = table["provenance"]["details"]
    loads = f"{det['load_before'][0]:.1f} / {result['context']['load_after'][0]:.1f}"
    return [f"b{batch}, {size}, w{width}", runtime, f"**{result['mape'] * 100:.2f}%**", f"**{result['spearman']:.3f}**",
            f"{comp['scale']:.3f} x sum {comp['offset_ms']:+.3f} ms", f"{raw_mape * 100:.1f}%", f"{raw_rho:.3f}",
            f"{min(a['measured_ms'] for a in result['archs']):.2f}-{max(a['measured_ms'] for a in result['archs']):.2f}",
            loads, f"{time.time() - start:.0f} s", f"`{name}.json`"]


@_cli.command
def main(argv: list[str] | None = None, *, prog: str = "python -m benchmarks.latency_runtimes") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = _cli.ArgumentParser(prog="python -m benchmarks.latency_runtimes", description=__doc__)
    p.add_argument("--settings", nargs="+", type=setting, default=list(SETTINGS), metavar="B,HxW,WIDTH",
                   help="table settings: batch, input size, width multiplier")
    p.add_argument("--runtimes", type=runtimes, default=["eager", "onnxruntime"], metavar="R1,R2,...",
                   help="runtimes, comma-separated (default: eager,onnxruntime)")
    p.add_argument("--calibrate", type=_cli.nonnegative_int, default=6, help="genotypes fitting each composition")
    p.add_argument("--build-repeats", type=_cli.int_at_least(3), default=40, help="timing rounds per table entry")
    p.add_argument("--validate-repeats", type=_cli.int_at_least(3), default=30, help="timing rounds per genotype")
    p.add_argument("--archs", type=_cli.int_at_least(2), default=20, help="random genotypes validated")
    _cli.add_output(p, f"folder for the tables, validations and summary (default {OUT})")
    p.add_argument("--summary", default="summary.md", help="file name of the summary inside --output")
    args = p.parse_args(argv)
    args.output = _cli.check_output_dir(args.output if args.output is not None else OUT)
    if Path(args.summary).name != args.summary or not args.summary:
        raise UsageError(f"bad file name {args.summary!r}, --summary, expected a plain file name like summary.md")
    args.output.mkdir(parents=True, exist_ok=True)
    load_before, started = machine_load(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = [one(r, s, args) for s in args.settings for r in args.runtimes]
    text = "\n".join([
        "# Latency tables per runtime: built, then validated end to end (same conditions)", "",
        f"- command: `python -m benchmarks.latency_runtimes {' '.join(argv)}`".rstrip(),
        f"- machine: {device_name('cpu')}; 1 thread, thread CPU time, steady heap; software: "
        + ", ".join(f"{k} {v}" for k, v in software_versions(("onnxruntime", "openvino")).items()),
        f"- started {started}; load average (1/5/15 min) before {load_before}, after {machine_load()}",
        f"- each table: {args.build_repeats} interleaved rounds per entry, composition fitted on {args.calibrate} "
        f"genotypes timed end to end (fastest, slowest, random); validation: {args.archs} other random genotypes, "
        f"{args.validate_repeats} rounds", "",
        markdown_table(["setting", "runtime", "MAPE", "Spearman", "composition", "raw-sum MAPE", "raw-sum Spearman",
                        "measured ms", "load build/validate", "wall", "table"], rows), ""])
    print(text)
    write_text_atomic(str(args.output / args.summary), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
