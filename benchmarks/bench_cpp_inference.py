"""Inference speed of CDNet-top2 on the compiled path (hwnas.deploy.fuse) against eager PyTorch and OSNet x1.0.

One command (CPU, batch 1 and 32, 256x128; writes runs/benchmarks/cpp_inference.md):
    python benchmarks/bench_cpp_inference.py
To replace the recorded result (tracked in git), say so: --out benchmarks/results/cpp_inference.md
On a GPU (batch 128, eager vs the CUDA path):
    python benchmarks/bench_cpp_inference.py --device cuda --batch-sizes 128

Implementations are timed interleaved (one forward of each per round), so a change in machine load
hits all of them alike; the table gives the median and the interquartile range over the rounds, and
the load average before and after.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

import hwnas
from hwnas import _cli
from hwnas.deploy import fuse
from hwnas.envinfo import device_name, machine_load, software_versions
from hwnas.errors import ExportError, OutputError

RECORDED = Path(__file__).resolve().parent / "results" / "cpp_inference.md"  # tracked: written only with --out
RESULTS = Path("runs") / "benchmarks" / "cpp_inference.md"


@dataclass(frozen=True)
class Timing:
    name: str
    batch: int
    median_ms: float
    q1_ms: float
    q3_ms: float

    @property
    def images_per_s(self) -> float:
        return self.batch / (self.median_ms / 1e3)


def build_models(device: str) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """The implementations to time, by name; all return (N, D) features of the eval-mode model."""
    torch.manual_seed(0)
    cdnet = hwnas.create_model("cdnet", genotype="cdnet-top2").eval().to(device)
    osnet = hwnas.create_model("osnet", width_mult=1.0).eval().to(device)
    fused = fuse(cdnet, "cuda" if device == "cuda" else "cpp")
    return {"cdnet-top2 eager": cdnet, f"cdnet-top2 fused ({fused.backend})": fused, "osnet-x1.0 eager": osnet}


def time_models(models: dict[str, Callable], batch: int, rounds: int, warmup: int, device: str) -> list[Timing]:
    x = torch.randn(batch, 3, 256, 128, device=device)
    samples: dict[str, list[float]] = {name: [] for name in models}
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.inference_mode():
        ref = models["cdnet-top2 eager"](x)
        fused_name = next(n for n in models if "fused" in n)
        err = float((models[fused_name](x) - ref).abs().max())
        if err > 1e-3 * max(1.0, float(ref.abs().max())):
            raise ExportError(f"fused model differs from eager by {err:.3g}, {fused_name}, expected agreement within "
                              "1e-3 (refusing to time a wrong model)")
        for r in range(warmup + rounds):
            for name, model in models.items():
                sync()
                start = time.perf_counter()
                model(x)
                sync()
                if r >= warmup:
                    samples[name].append((time.perf_counter() - start) * 1e3)
    out = []
    for name, ms in samples.items():
        q = statistics.quantiles(ms, n=4) if len(ms) > 1 else [ms[0]] * 3
        out.append(Timing(name, batch, statistics.median(ms), q[0], q[2]))
    return out


def machine(device: str) -> str:
    return (f"{device_name(device)}, {torch.get_num_threads()} torch threads, "
            + ", ".join(f"{k} {v}" for k, v in software_versions().items() if k in ("torch", "cuda")))


def load_average() -> str:
    return " / ".join(f"{v:.2f}" for v in machine_load()) or "n/a"


def to_markdown(timings: list[Timing], device: str, load_before: str, load_after: str, command: str) -> str:
    lines = [f"# Compiled inference: CDNet-top2 fused vs eager ({device})", "",
             f"- command: `{command}`", f"- machine: {machine(device)}",
             f"- load average (1/5/15 min) before: {load_before}; after: {load_after}",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; input 3x256x128, float32, eval",
             *_load_note(load_before, device), "",
             "| model | batch | median ms | IQR ms | images/s | speed-up vs cdnet eager |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for batch in sorted({t.batch for t in timings}):
        rows = [t for t in timings if t.batch == batch]
        base = next(t for t in rows if t.name == "cdnet-top2 eager").median_ms
        for t in rows:
            lines.append(f"| {t.name} | {batch} | {t.median_ms:.1f} | {t.q1_ms:.1f}-{t.q3_ms:.1f} | "
                         f"{t.images_per_s:.1f} | {base / t.median_ms:.2f}x |")
    return "\n".join(lines) + "\n"


def _load_note(load_before: str, device: str) -> list[str]:
    """A warning line when other jobs shared the CPU: absolute times are then inflated, ratios less so."""
    try:
        load = float(load_before.split(" / ")[0])
    except ValueError:
        return []
    if device != "cpu" or load < 0.5 * (os.cpu_count() or 1):
        return []
    return [(f"- NOTE: the CPU was shared (load {load:.1f} on {os.cpu_count()} CPUs): absolute times are inflated; "
             "the implementations were timed interleaved, so the ratios are the meaningful numbers")]


def write_atomic(path: Path, text: str) -> None:
    from hwnas._io import write_text_atomic

    write_text_atomic(path, text)


@_cli.command
def main(argv: list[str] | None = None, *, prog: str = "python benchmarks/bench_cpp_inference.py") -> int:
    parser = _cli.ArgumentParser(prog=prog, description=__doc__)
    _cli.add_device(parser, default="cpu")
    parser.add_argument("--batch-size", "--batch-sizes", dest="batch_sizes", type=_cli.positive_int, nargs="+",
                        default=None, metavar="N", help="batch sizes (default: 1 32 on cpu, 128 on cuda)")
    parser.add_argument("--rounds", type=_cli.positive_int, default=None,
                        help="timed rounds (default 30 at batch 1, else 7)")
    parser.add_argument("--warmup", type=_cli.nonnegative_int, default=2, help="untimed rounds first")
    _cli.add_threads(parser)
    parser.add_argument("--output", "--out", dest="out", type=_cli.path, default=None, metavar="FILE",
                        help=f"Markdown file (default {RESULTS} on cpu; the recorded result is {RECORDED})")
    args = parser.parse_args(argv)
    args.device = _cli.resolve_device(args.device).type
    if args.out is not None:
        if args.out.is_dir():
            raise OutputError(f"output path is a folder, --output {args.out}, expected a file name like results.md")
        _cli.check_output_file(args.out)
    _cli.apply_threads(args.threads)
    batches = args.batch_sizes or ([128] if args.device == "cuda" else [1, 32])
    load_before = load_average()
    models = build_models(args.device)
    timings = []
    for batch in batches:
        rounds = args.rounds or (30 if batch == 1 else 7)
        timings += time_models(models, batch, rounds, args.warmup, args.device)
    text = to_markdown(timings, args.device, load_before, load_average(),
                       "python benchmarks/bench_cpp_inference.py " + " ".join(sys.argv[1:] if argv is None else argv))
    print(text)
    out = args.out or (RESULTS if args.device == "cpu" else RESULTS.with_name("cpp_inference_cuda.md"))
    write_atomic(out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
