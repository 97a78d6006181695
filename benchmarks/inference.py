"""Inference benchmark of CDNet-top2: deployment runtimes side by side (CPU), and the ops backends with the
LiteConv kernel's achieved memory bandwidth (GPU).

    python -m benchmarks.inference --device cpu --batch-size 1 32 --threads 1 2   # runtimes (the CPU default)
    python -m benchmarks.inference --device cuda                                  # backends, batch 128 (issue 6)
    python -m benchmarks.inference --device cpu --batch-size 4 --backends eager,batched

Runtimes (``--runtimes``; :func:`hwnas.deploy.session`): eager PyTorch, ``compiled`` (torch.compile of the
eager model), ``cpp`` (hwnas's compiled C++ ops, BN folded), ``onnxruntime`` and ``openvino`` (the BN-folded
model exported to ONNX, fp32). For every (batch, threads) all runtimes are timed interleaved: each round runs
every runtime once, so load changes hit them alike; wall time, median and interquartile range over the rounds.
``feature err`` = max |features - eager features| / max |eager features| on the timed input, checked before
timing. ``--heap steady`` (default) keeps freed memory in the process heap first (:func:`hwnas.deploy.steady_heap`),
as latency tables are measured. ``peak MB`` = how much a fresh process's peak resident memory grows when it builds that runtime's
session and runs ``--memory-runs`` forwards (after the model and input exist), measured in a child process.

Backends (``--backends``; ``hwnas.ops``): ``model(x)`` in eval mode under ``torch.no_grad`` with the ops backend
selected (median over ``--repeats``); ratios against eager and torch.compile; the bandwidth line times one fused
LiteConv depth of both branches at the stage-1 shape (64x32, mid 64, the batch given) in its inference
(BN-folded) and training variants: minimal traffic divided by the median time. Targets (issue 6, H100): triton
>= 1.5x eager; LiteConv >= 60% of peak bandwidth.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

import hwnas
from benchmarks._device import (
    COLUMNS,
    EMPTY,
    apply_threads,
    backend_runner,
    check_output_file,
    describe,
    lite_conv_min_bytes,
    markdown_table,
    parse_backends,
    peak_gbps,
    ratio_cell,
    time_ms,
    write_text_atomic,
)
from hwnas import _cli, ops
from hwnas.deploy import available_runtimes, runtime_version, session, steady_heap
from hwnas.envinfo import machine_load
from hwnas.errors import UsageError
from hwnas.models._limits import check_input_size

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
RUNTIMES = ("eager", "compiled", "cpp", "onnxruntime", "openvino")


def _model(width_mult: float) -> torch.nn.Module:
    torch.manual_seed(0)
    return hwnas.create_model("cdnet", genotype="cdnet-top2", width_mult=width_mult).eval()


def runtime_call(name: str, model: torch.nn.Module, x: torch.Tensor, threads: int) -> Callable[[], Any]:
    """A zero-argument forward of ``model`` on ``x`` on runtime ``name`` (inputs bound once)."""
    if name == "compiled":
        compiled = torch.compile(model, dynamic=False)

        def call() -> torch.Tensor:
            with torch.inference_mode():
                return compiled(x)
        return call
    sess = session(model, name, input_size=(x.shape[2], x.shape[3]), batch=x.shape[0], threads=threads)
    return sess.bind(x)


def _features(name: str, out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out.float()
    if isinstance(out, list):  # onnxruntime
        return torch.from_numpy(out[0])
    return torch.from_numpy(next(iter(out.values())).copy())  # openvino


def _usable(names: Sequence[str]) -> tuple[list[str], list[str]]:
    status = available_runtimes()
    keep, notes = [], []
    for n in names:
        ok, why = status.get(n, (True, "")) if n != "compiled" else (True, "")
        if ok:
            keep.append(n)
        else:
            notes.append(f"{n} skipped: {why}")
    return keep, notes


def time_runtimes(names: Sequence[str], model: torch.nn.Module, batch: int, size: tuple[int, int], threads: int,
                  warmup: int, rounds: int) -> dict[str, dict[str, float]]:
    """name -> {median_ms, q1_ms, q3_ms, err} for one (batch, threads), all timed interleaved."""
    x = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(0))
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)  # eager and torch.compile
    try:
        calls = {n: runtime_call(n, model, x, threads) for n in names}
        with torch.inference_mode():
            ref = model(x)
        errors = {n: float((_features(n, c()) - ref).abs().max() / ref.abs().max()) for n, c in calls.items()}
        for n, e in errors.items():
            if not e < 1e-3:
                raise RuntimeError(f"{n} features differ from eager by {e:.3g} (relative): refusing to time it")
        for _ in range(warmup):
            for c in calls.values():
                c()
        samples: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(rounds):
            for n, c in calls.items():
                t0 = time.perf_counter()
                c()
                samples[n].append((time.perf_counter() - t0) * 1e3)
    finally:
        torch.set_num_threads(previous)
    out = {}
    for n, s in samples.items():
        q = statistics.quantiles(s, n=4, method="inclusive")
        out[n] = {"median_ms": statistics.median(s), "q1_ms": q[0], "q3_ms": q[2], "err": errors[n]}
    return out


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def peak_rss_growth_mb(name: str, width_mult: float, batch: int, size: tuple[int, int], threads: int,
                       runs: int, heap: str = "steady") -> float:
    """Peak RSS growth (MB) of this process from building the session and running ``runs`` forwards.

    Linux: the peak (VmHWM) is reset to the current RSS first (``/proc/self/clear_refs``), so the growth is
    measured from the moment the model and input exist. Run it in a fresh process (:func:`peak_memory_mb`).
    """
    torch.set_num_threads(threads)
    if heap == "steady":
        steady_heap()
    model = _model(width_mult)
    x = torch.randn(batch, 3, *size)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kb("VmRSS")
    call = runtime_call(name, model, x, threads)
    for _ in range(runs):
        call()
    return (_status_kb("VmHWM") - before) / 1024


def peak_memory_mb(name: str, width_mult: float, batch: int, size: tuple[int, int], threads: int,
                   runs: int, heap: str = "steady") -> float:
    """:func:`peak_rss_growth_mb` in a child process (a fresh interpreter, so runtimes do not share memory)."""
    code = (f"from benchmarks.inference import peak_rss_growth_mb as f; "
            f"print(f({name!r}, {width_mult!r}, {batch}, {tuple(size)!r}, {threads}, {runs}, {heap!r}))")
    proc = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, check=False,
                          cwd=Path(__file__).resolve().parent.parent)
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe of {name} failed: {proc.stderr.strip()[-500:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def runtime_rows(args: argparse.Namespace, thread_counts: Sequence[int]) -> tuple[list[list[str]], list[str]]:
    names, notes = _usable(args.runtimes.split(","))
    model, size = _model(args.width_mult), (args.height, args.width)
    rows = []
    for threads in thread_counts:
        if threads < 1:
            raise SystemExit(f"error: bad value {threads}, --threads, expected an integer >= 1")
        for batch in args.batch:
            rounds = args.rounds or (30 if batch == 1 else 8)
            res = time_runtimes(names, model, batch, size, threads, args.warmup, rounds)
            base = res.get("eager", {}).get("median_ms", float("nan"))
            ort = res.get("onnxruntime", {}).get("median_ms", float("nan"))
            for n, r in res.items():
                mem = (f"{peak_memory_mb(n, args.width_mult, batch, size, threads, args.memory_runs, args.heap):.0f}"
                       if args.memory_runs else "-")
                version = (torch.__version__ if n == "compiled" else runtime_version(n)).split("-")[0]
                rows.append([n, version, str(batch), str(threads), f"{r['median_ms']:.2f}",
                             f"{r['q1_ms']:.2f}-{r['q3_ms']:.2f}", f"{batch / r['median_ms'] * 1e3:.1f}",
                             f"{base / r['median_ms']:.2f}x", f"{ort / r['median_ms']:.2f}x", f"{r['err']:.1e}", mem])
            print(f"done: batch {batch}, {threads} thread(s)", file=sys.stderr)
    return rows, notes


def throughput_rows(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> list[list[str]]:
    batch = args.batch[0]
    x = torch.randn(batch, 3, args.height, args.width, generator=torch.Generator().manual_seed(0))
    x = x.to(device, dtype)
    results: dict[str, tuple[float, float]] = {}
    errors: dict[str, float] = {}
    reference = None
    for name in args.backends:
        torch.manual_seed(0)
        net = hwnas.create_model("cdnet", genotype="cdnet-top2", width_mult=args.width_mult).to(device, dtype).eval()
        model, backend = backend_runner(name, net)
        ok, why = ops.available_backends().get(backend, (False, f"unknown ops backend {backend!r}"))
        if not ok:
            print(f"skip {name}: {why}")
            continue

        def forward(model=model, backend=backend) -> torch.Tensor:
            with torch.no_grad(), ops.use_backend(backend):
                return model(x)

        features = forward().float()  # checked against the first column before timing
        reference = features if reference is None else reference
        errors[name] = ((features - reference).abs().max() / reference.abs().max()).item()
        results[name] = time_ms(forward, device, args.warmup, args.repeats)
        print(f"{name}: median {results[name][0]:.2f} ms", file=sys.stderr, flush=True)  # as each column ends
    base = results.get("eager", (None,))[0]
    comp = results.get("compiled", (None,))[0]
    return [[n, f"{m:.2f}", f"{iqr:.2f}", f"{batch / m * 1e3:.0f}", ratio_cell(base, m), ratio_cell(comp, m),
             f"{errors[n]:.1e}"] for n, (m, iqr) in results.items()]


def bandwidth_rows(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> list[list[str]]:
    """LiteConv (two groups on a shared input) at the stage-1 shape: GB/s and fraction of the peak."""
    from hwnas.ops import _triton

    ok, why = _triton.availability()
    if not ok:
        return [["lite_conv", EMPTY, EMPTY, f"not run: {why}"]]
    lc = _triton.kernels().lite_conv
    n, c, h, w, g = args.batch[0], 64, args.height // 4, args.width // 4, 2
    x = torch.randn(n, c, h, w, device=device, dtype=dtype)
    w_pw = torch.randn(g, c, c, device=device, dtype=dtype) / 8
    w_dw = torch.randn(g, c, 9, device=device, dtype=dtype) / 3
    bias = torch.zeros(g * c, device=device, dtype=dtype)
    in_map = torch.zeros(g, dtype=torch.int32, device=device)
    nbytes = lite_conv_min_bytes(n, g, c, h, w, x.element_size(), shared=True)
    peak = peak_gbps(device, args.peak_gbps)
    rows = []
    for label, fn in (("inference (BN folded)", lambda: lc.lite_conv_folded(x, in_map, w_pw, w_dw, bias)),
                      ("training (BN stats)", lambda: lc.lite_conv(x, in_map, None, w_pw, w_dw))):
        med, _ = time_ms(fn, device, args.warmup, args.repeats)
        gbps = nbytes / (med * 1e-3) / 1e9
        rows.append([label, f"{med * 1e3:.1f}", f"{gbps:.0f}", f"{gbps / peak:.0%}" if peak else "unknown peak"])
    return rows


PROG = "python -m benchmarks.inference"


def _parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = _cli.ArgumentParser(prog=prog, description=__doc__)
    _cli.add_device(p)
    p.add_argument("--batch-size", type=_cli.positive_int, nargs="+", metavar="N",
                   help="batch sizes (default: 1 32 for runtimes, 128 for backends)")
    _cli.add_input_size(p, (256, 128))
    p.add_argument("--width-mult", type=_cli.width_mult, default=1.0, help="channel width multiplier")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="model and input dtype")
    p.add_argument("--runtimes", type=_runtime_list, metavar="R1,R2,...",
                   help=f"deployment runtimes, comma-separated (CPU default: {','.join(RUNTIMES)})")
    p.add_argument("--threads", type=_cli.int_at_least(1, _cli.MAX_THREADS), nargs="+", metavar="N",
                   help="torch CPU threads: runtimes are timed at each count (default 1); backends use the first "
                        "(default: torch's choice)")
    p.add_argument("--rounds", type=_cli.positive_int, help="interleaved timing rounds (default 30 at batch 1, else 8)")
    p.add_argument("--memory-runs", type=_cli.nonnegative_int, default=3,
                   help="forwards in the peak-memory probe (0: skip it)")
    p.add_argument("--heap", choices=("steady", "default"), default="steady",
                   help="steady: hwnas.deploy.steady_heap() first (freed activations stay in the heap; eager and cpp "
                        "then pay no page faults, as onnxruntime/OpenVINO with their arenas); default: glibc's")
    p.add_argument("--backends", type=parse_backends, metavar="B1,B2,...",
                   help=f"hwnas.ops backends, from {', '.join(COLUMNS)} (GPU default: eager,compiled,batched,triton)")
    p.add_argument("--warmup", type=_cli.nonnegative_int, default=3, help="untimed calls per column")
    p.add_argument("--repeats", type=_cli.positive_int, default=20, help="backends: timed calls")
    p.add_argument("--peak-gbps", type=_cli.positive_float, help="override the device's peak memory bandwidth (GB/s)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 in cuDNN/matmul and the Triton dots (fp32 only)")
    p.add_argument("--output", type=_cli.path, metavar="FILE", help="also write the tables (Markdown) to this file")
    return p


def _runtime_list(text: str) -> str:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names or len(set(names)) != len(names) or any(n not in RUNTIMES for n in names):
        raise argparse.ArgumentTypeError(f"bad value {text!r}, expected distinct comma-separated runtimes from "
                                         f"{', '.join(RUNTIMES)}")
    return ",".join(names)


@_cli.command
def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser(prog).parse_args(argv)
    device, dtype = _cli.resolve_device(args.device), DTYPES[args.dtype]
    if args.output is not None:
        check_output_file(args.output)
    check_input_size("cdnet", args.input_size, "--input-size", width_mult=args.width_mult)
    args.height, args.width = args.input_size
    if args.runtimes is None and args.backends is None:
        cpu = device.type == "cpu"
        args.runtimes, args.backends = (",".join(RUNTIMES), None) if cpu else (None, ["eager", "compiled", "batched",
                                                                                       "triton"])
    if args.runtimes and device.type != "cpu":
        raise UsageError(f"deployment runtimes on {device}, --runtimes with --device {args.device}, expected "
                         "--device cpu (the runtimes are timed on the CPU)")
    args.batch = args.batch_size or ([1, 32] if args.runtimes else [128])
    if args.tf32:  # without it, PyTorch's defaults (cuDNN convolutions TF32, matmul and Triton dots IEEE fp32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    heap = steady_heap() if args.heap == "steady" else "glibc defaults"
    load_before = machine_load()
    parts = [(f"inference (CDNet-top2, width {args.width_mult}, {args.height}x{args.width}, {args.dtype}"
              f"{', TF32 allowed' if args.tf32 else ''})"),
             f"command: python -m benchmarks.inference {' '.join(argv)}".rstrip(),
             f"device: {describe(device)}; heap: {heap}"]
    if args.runtimes:
        rows, notes = runtime_rows(args, args.threads or [1])
        parts += ["", "Deployment runtimes (hwnas.deploy.session), timed interleaved, wall time", "",
                  markdown_table(["runtime", "version", "batch", "threads", "median ms", "IQR ms", "img/s",
                                  "vs eager", "vs onnxruntime", "feature err", "peak MB"], rows), *notes]
    if args.backends:
        apply_threads(args.threads[0] if args.threads else None)
        bandwidth = markdown_table(["variant", "median us", "GB/s", "of peak"], bandwidth_rows(args, device, dtype))
        print(bandwidth, flush=True)  # measured first: a later column that hangs cannot lose it
        parts += ["", (f"ops backends, batch {args.batch[0]}; peak bandwidth: "
                       f"{peak_gbps(device, args.peak_gbps) or 'unknown'} GB/s"), "",
                  markdown_table(["backend", "median ms", "IQR ms", "img/s", "vs eager", "vs compiled", "feature err"],
                                 throughput_rows(args, device, dtype)),
                  "", "LiteConv kernel, stage-1 shape, two branches", "",
                  bandwidth]
    parts += ["", f"load average (1/5/15 min) before: {load_before}; after: {machine_load()}"]
    text = "\n".join(parts)
    print(text)
    if args.output:
        write_text_atomic(str(args.output), text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
