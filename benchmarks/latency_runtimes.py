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
from hwnas.envinfo import device_name, machine_load, software_versions
from hwnas.latency.validate import mape_spearman

OUT = Path(__file__).resolve().parent / "results" / "latency_runtimes"
SETTINGS = ("8,64x32,0.5", "4,128x64,1.0", "1,256x128,1.0")


def table_name(runtime: str, batch: int, size: str, width: float) -> str:
    return f"{runtime}-b{batch}-{size}-w{width}"


def run(cmd: list[str]) -> None:
    print("$ " + " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)


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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks.latency_runtimes", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), metavar="B,HxW,WIDTH")
    p.add_argument("--runtimes", default="eager,onnxruntime")
    p.add_argument("--calibrate", type=int, default=6)
    p.add_argument("--build-repeats", type=int, default=40)
    p.add_argument("--validate-repeats", type=int, default=30)
    p.add_argument("--archs", type=int, default=20)
    p.add_argument("--output", type=Path, default=OUT)
    p.add_argument("--summary", default="summary.md", help="file name of the summary inside --output")
    args = p.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    load_before, started = machine_load(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    rows = [one(r, s, args) for s in args.settings for r in args.runtimes.split(",")]
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
