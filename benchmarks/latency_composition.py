"""Why a latency table's sums miss a network's latency: whole network vs its parts, on one runtime and setting.

    python -m benchmarks.latency_composition --batch-size 8 --input-size 64x32 --width-mult 0.5 --runtime eager --heap default
    python -m benchmarks.latency_composition ... --heap steady        # the same with hwnas.deploy.steady_heap()

For a few random CDNet genotypes, all timed interleaved with the thread's CPU time on 1 thread:
- ``whole``: the network end to end (what ``hwnas.latency validate`` measures);
- ``in-net``: each part (stem, six layers, two DownSamples, the neck's inference path) timed *inside* the
  network's forward (eager and cpp only: the ONNX runtimes run one graph); ``whole - sum(in-net)`` is the glue
  between parts, ``sum(in-net) - sum(table)`` what running in context adds to the parts;
- ``table``: the parts timed alone on random inputs of their shapes, as ``hwnas.latency build`` times entries;
- ``faults``: minor page faults per forward (``getrusage(RUSAGE_THREAD)``) of the whole network and of the
  parts alone; each costs the kernel a zeroed 4 KiB page, counted in the thread's CPU time.
The heap cannot be restored within a process, so each ``--heap`` is its own run. Writes Markdown to --output.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

import hwnas
from benchmarks._device import check_output_file, markdown_table, write_text_atomic
from hwnas import _cli
from hwnas.deploy import compile_module, fuse, steady_heap
from hwnas.envinfo import device_name, machine_load, software_versions
from hwnas.errors import UsageError
from hwnas.latency.endtoend import random_genotypes
from hwnas.latency.measure import HeadPath
from hwnas.latency.timing import time_interleaved
from hwnas.models import check_input_size
from hwnas.models.necks import build_neck
from hwnas.space.blocks import CDBlock, DownSample, Stem, scaled_planes
from hwnas.space.macro import macro_spec

PARTS = ("stem", "L0", "L1", "D1", "L2", "L3", "D2", "L4", "L5", "head")


class Timed(nn.Module):
    """Records the thread CPU time (ms) of each call of ``inner`` under ``key``."""

    def __init__(self, inner: nn.Module, log: dict[str, list[float]], key: str) -> None:
        super().__init__()
        self.inner, self.log, self.key = inner, log, key

    def forward(self, *args: Any) -> Any:
        t0 = time.thread_time()
        out = self.inner(*args)
        self.log.setdefault(self.key, []).append((time.thread_time() - t0) * 1e3)
        return out


def faults_per_call(call: Callable[[], Any], n: int = 10) -> float:
    with torch.inference_mode():
        call()
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        for _ in range(n):
            call()
        return (resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before) / n


def whole_call(model: nn.Module, runtime: str, x: torch.Tensor) -> Callable[[], Any]:
    if runtime == "eager":
        return lambda: model(x)
    return hwnas.deploy.session(model, runtime, input_size=tuple(x.shape[2:]), batch=x.shape[0], threads=1).bind(x)


def instrumented(model: nn.Module, runtime: str, log: dict[str, list[float]]) -> nn.Module | None:
    """The network with a timer around each part (eager: the model; cpp: its fused form); None for ONNX runtimes."""
    if runtime not in ("eager", "cpp"):
        return None
    net = fuse(model, "cpp") if runtime == "cpp" else model
    stem_owner = net.backbone if runtime == "eager" else net
    layers = stem_owner.layers if runtime == "eager" else net.blocks
    stem_owner.stem = Timed(stem_owner.stem, log, "stem")
    for i in range(6):
        layers[i] = Timed(layers[i], log, f"L{i}")
    for j in range(2):
        stem_owner.downsamples[j] = Timed(stem_owner.downsamples[j], log, f"D{j + 1}")
    net.neck = Timed(net.neck, log, "head")
    return net


def part_calls(genotype: hwnas.Genotype, runtime: str, batch: int, res: tuple[int, int], width: float
               ) -> list[Callable[[], Any]]:
    """Each part alone on random inputs of its shape, fresh modules: the way table entries are timed."""
    spec = macro_spec(width)
    p, h, w = spec.planes, res[0], res[1]
    mods: dict[str, tuple[nn.Module, list[tuple[int, ...]]]] = {
        "stem": (Stem(p[0]), [(batch, 3, h, w)]),
        "D1": (DownSample(p[1]), [(batch, p[1], h // 4, w // 4)]),
        "D2": (DownSample(p[2]), [(batch, p[2], h // 8, w // 8)]),
        "head": (HeadPath(build_neck("fblneck", spec.feature_channels, 1)),
                 [(batch, p[2], h // 16, w // 16), (batch, p[3], h // 16, w // 16)]),
    }
    for ls, c in zip(spec.layers, genotype.layers):
        hh, ww = ls.input_size(res)
        mods[f"L{ls.index}"] = (CDBlock(ls.in_channels, ls.out_channels, c.k1, c.k2, c.r),
                                [(batch, ls.in_channels, hh, ww)])
    calls = []
    for key in PARTS:
        module, shapes = mods[key]
        xs = [torch.randn(s) for s in shapes]
        if runtime == "eager":
            m = module.eval()
            calls.append(lambda m=m, xs=xs: m(*xs))
        else:
            calls.append(compile_module(module.eval(), xs, runtime, 1, name=key).bind(*xs))
    return calls


def measure(genotype: hwnas.Genotype, args: argparse.Namespace) -> dict[str, float]:
    res = tuple(args.resolution)
    torch.manual_seed(0)
    model = hwnas.create_model("cdnet", genotype=genotype, width_mult=args.width).eval()
    x = torch.randn(args.batch, 3, *res)
    log: dict[str, list[float]] = {}
    whole = whole_call(model, args.runtime, x)
    inst_model = instrumented(hwnas.create_model("cdnet", genotype=genotype, width_mult=args.width).eval(),
                              args.runtime, log)
    parts = part_calls(genotype, args.runtime, args.batch, res, args.width)
    calls = [whole] + parts + ([lambda: inst_model(x)] if inst_model is not None else [])
    samples = time_interleaved(calls, "cpu", args.warmup, args.repeats, timer="thread_cpu")
    med = [statistics.median(s) for s in samples]
    out = {"whole": med[0], "table": sum(med[1:1 + len(parts)]),
           "faults_whole": faults_per_call(whole), "faults_table": sum(faults_per_call(c) for c in parts)}
    if inst_model is not None:
        n = args.warmup + 2 * args.repeats  # the instrumented call ran this often (primed rounds)
        out["in_net"] = sum(statistics.median(v[-n:]) for v in log.values())
    return out


def build_parser() -> argparse.ArgumentParser:
    p = _cli.ArgumentParser(prog="python -m benchmarks.latency_composition", description=__doc__)
    p.add_argument("--batch-size", "--batch", type=_cli.positive_int, default=8, help="images per forward")
    _cli.add_input_size(p, (64, 32), "input size HxW in pixels (multiples of 16)")
    p.add_argument("--resolution", type=_cli.positive_int, nargs=2, default=None, metavar=("H", "W"),
                   help="the input size as H W (older spelling of --input-size HxW)")
    p.add_argument("--width-mult", "--width", type=_cli.width_mult, default=0.5, help="width multiplier beta")
    p.add_argument("--runtime", default="eager", choices=hwnas.deploy.RUNTIMES, help="runtime the parts are timed on")
    p.add_argument("--heap", choices=("default", "steady"), default="default",
                   help="steady: hwnas.deploy.steady_heap() first; default: glibc's")
    p.add_argument("--archs", type=_cli.positive_int, default=4, help="random genotypes to time")
    p.add_argument("--seed", type=_cli.seed, default=100, help="genotypes: random, this seed (apart from validation's 0)")
    p.add_argument("--warmup", type=_cli.nonnegative_int, default=5, help="untimed rounds")
    p.add_argument("--repeats", type=_cli.positive_int, default=30, help="interleaved timing rounds")
    p.add_argument("--output", type=_cli.path, default=None, metavar="FILE", help="also write the Markdown here")
    return p


@_cli.command
def main(argv: list[str] | None = None, *, prog: str = "python -m benchmarks.latency_composition") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.resolution is not None:
        args.input_size = tuple(args.resolution)
    args.resolution, args.batch, args.width = args.input_size, args.batch_size, args.width_mult
    h, w = args.input_size
    if h % 16 or w % 16:
        raise UsageError(f"input size {h}x{w}, --input-size, expected multiples of 16 (the table's parts must tile "
                         "the network: 256x128, 128x64, 64x32, ...)")
    scaled_planes(args.width_mult)
    check_input_size("cdnet", args.input_size, width_mult=args.width_mult)
    if args.output is not None:
        check_output_file(args.output)
    torch.set_num_threads(1)
    heap = steady_heap() if args.heap == "steady" else "glibc defaults"
    load_before = machine_load()
    rows = []
    for g in random_genotypes("cdnet", args.archs, args.seed):
        r = measure(g, args)
        in_net = r.get("in_net")
        rows.append([f"`{g.tostr()}`", f"{r['whole']:.3f}", "-" if in_net is None else f"{in_net:.3f}",
                     f"{r['table']:.3f}", f"{(r['table'] / r['whole'] - 1) * 100:+.1f}%",
                     "-" if in_net is None else f"{r['whole'] - in_net:+.3f}",
                     "-" if in_net is None else f"{in_net - r['table']:+.3f}",
                     f"{r['faults_whole']:.0f}", f"{r['faults_table']:.0f}"])
        print(f"done {g.tostr()}", file=sys.stderr)
    text = "\n".join([
        f"## {args.runtime}, batch {args.batch}, {args.resolution[0]}x{args.resolution[1]}, width {args.width}, "
        f"heap {args.heap}", "",
        f"- command: `python -m benchmarks.latency_composition {' '.join(argv)}`",
        f"- machine: {device_name('cpu')}, 1 thread, thread CPU time, {args.repeats} interleaved rounds; software: "
        + ", ".join(f"{k} {v}" for k, v in software_versions(("onnxruntime", "openvino")).items()),
        f"- heap: {heap}; load average before {load_before}, after {machine_load()}", "",
        markdown_table(["genotype", "whole ms", "in-net parts ms", "table parts ms", "table vs whole",
                        "glue ms", "context ms", "faults/fwd whole", "faults/fwd parts"], rows), ""])
    print(text)
    if args.output is not None:
        write_text_atomic(str(args.output), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
