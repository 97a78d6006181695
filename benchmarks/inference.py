"""Inference benchmark: CDNet-top2 at batch 128, eager vs torch.compile vs the fused backends, plus the
LiteConv kernel's achieved memory bandwidth against the device's peak.

    python -m benchmarks.inference --device cuda                    # batch 128, 256x128 (issue 6 target)
    python -m benchmarks.inference --device cpu --batch 4 --backends eager,batched

Throughput = images per second of ``model(x)`` in eval mode under ``torch.no_grad`` (median over
``--repeats``); ratios against eager and torch.compile; ``feature err`` = max abs difference of the
features from the first column's over their max abs value, checked before timing. The bandwidth line
times one fused LiteConv depth of both branches at the stage-1 shape (64x32, mid 64, the batch given)
in its inference (BN-folded) and training variants: minimal traffic (input read + output written once)
divided by the median time.
Targets (issue 6, H100): triton >= 1.5x eager; LiteConv >= 60% of peak bandwidth.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

import torch

import hwnas
from benchmarks._device import (EMPTY, add_threads_argument, apply_threads, backend_runner, describe, lite_conv_min_bytes,
                                markdown_table, peak_gbps, ratio_cell, time_ms, write_text_atomic)
from hwnas import ops

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def throughput_rows(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> list[list[str]]:
    x = torch.randn(args.batch, 3, args.height, args.width, generator=torch.Generator().manual_seed(0))
    x = x.to(device, dtype)
    results: dict[str, tuple[float, float]] = {}
    errors: dict[str, float] = {}
    reference = None
    for name in args.backends.split(","):
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
    return [[n, f"{m:.2f}", f"{iqr:.2f}", f"{args.batch / m * 1e3:.0f}", ratio_cell(base, m), ratio_cell(comp, m),
             f"{errors[n]:.1e}"] for n, (m, iqr) in results.items()]


def bandwidth_rows(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> list[list[str]]:
    """LiteConv (two groups on a shared input) at the stage-1 shape: GB/s and fraction of the peak."""
    from hwnas.ops import _triton

    ok, why = _triton.availability()
    if not ok:
        return [["lite_conv", EMPTY, EMPTY, f"not run: {why}"]]
    lc = _triton.kernels().lite_conv
    n, c, h, w, g = args.batch, 64, args.height // 4, args.width // 4, 2
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


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.inference", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--width-mult", type=float, default=1.0)
    p.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    p.add_argument("--backends", default="eager,compiled,batched,triton")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--peak-gbps", type=float, help="override the device's peak memory bandwidth (GB/s)")
    p.add_argument("--tf32", action="store_true", help="allow TF32 in cuDNN/matmul and the Triton dots (fp32 only)")
    add_threads_argument(p)
    p.add_argument("--output", help="also write the tables (Markdown) to this file")
    args = p.parse_args(argv)
    apply_threads(args.threads)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    if args.tf32:  # without it, PyTorch's defaults (cuDNN convolutions TF32, matmul and Triton dots IEEE fp32)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    bandwidth = markdown_table(["variant", "median us", "GB/s", "of peak"], bandwidth_rows(args, device, dtype))
    print(bandwidth, flush=True)  # measured first: a later column that hangs cannot lose it
    text = (f"inference (CDNet-top2, batch {args.batch}, {args.height}x{args.width}, {args.dtype}"
            f"{', TF32 allowed' if args.tf32 else ''})\n"
            f"device: {describe(device)}; peak bandwidth: {peak_gbps(device, args.peak_gbps) or 'unknown'} GB/s\n\n"
            + markdown_table(["backend", "median ms", "IQR ms", "img/s", "vs eager", "vs compiled", "feature err"],
                             throughput_rows(args, device, dtype))
            + "\n\nLiteConv kernel, stage-1 shape, two branches\n\n" + bandwidth)
    print(text)
    if args.output:
        write_text_atomic(args.output, text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
