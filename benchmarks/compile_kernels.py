"""Compile every hwnas Triton kernel variant for a GPU target without a GPU (Triton's bundled ptxas).

    python -m benchmarks.compile_kernels                       # sm_90 (H100), fp32/fp16/bf16, mid 16/64/128
    python -m benchmarks.compile_kernels --arch 80 --dtypes fp16 --channels 64

The CPU interpreter checks what the kernels compute but not that they compile: this lowers each kernel
(forward, backward, folded inference, gate pool and sum) through TTIR/TTGIR/LLVM/PTX to a cubin for the
given compute capability with the tile sizes ``hwnas.kernels._config.pixel_tiling`` picks on a GPU,
and prints each variant's shared memory. fp32 dots are IEEE unless ``--tf32``; IEEE fp32 at mid >= 64
lowers to long FMA sequences that take ptxas minutes per variant. Must run without
``TRITON_INTERPRET`` (the kernels would be imported as interpreted functions).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator, Sequence

from benchmarks._device import markdown_table
from hwnas import _cli

TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def _signature(fn, const: dict, fp32_ptrs: Sequence[str], dtype: str) -> dict:
    sig = {}
    for name in fn.arg_names:
        if name in const:
            sig[name] = "constexpr"
        elif name == "in_map_ptr":
            sig[name] = "*i32"
        elif name.endswith("_ptr"):
            sig[name] = "*fp32" if name in fp32_ptrs else f"*{dtype}"
        else:
            sig[name] = "i32"
    return sig


def variants(dtype: str, channels: int) -> Iterator[tuple[str, object, dict, tuple[str, ...]]]:
    """(label, kernel, constexprs, fp32 pointer names) of every launch configuration the launchers use."""
    import torch

    from hwnas.ops._triton import kernels
    k = kernels()
    tiling = k._config.pixel_tiling(1 << 20, channels)  # GPU tiling (the interpreter is off here)
    prec = k._config.dot_precision(getattr(torch, TORCH_DTYPES[dtype]))
    base = dict(BLOCK_P=tiling.block_p, BLOCK_C=tiling.block_c, PRECISION=prec, DOT_F32=False)
    fwd32 = ("stats_ptr", "pre_ptr")
    bwd32 = ("gx_ptr", "gpre_ptr", "gwpw_ptr", "gwdw_ptr", "pre_ptr")
    for pro in (False, True):
        yield (f"lite_conv fwd prologue={pro}", k.lite_conv._lite_conv_fwd_kernel,
               dict(base, HAS_PROLOGUE=pro, COMPUTE_STATS=True, EPI_BIAS_RELU=False), fwd32)
        yield f"lite_conv bwd prologue={pro}", k.lite_conv._lite_conv_bwd_kernel, dict(base, HAS_PROLOGUE=pro), bwd32
    yield ("lite_conv folded", k.lite_conv._lite_conv_fwd_kernel,
           dict(base, HAS_PROLOGUE=False, COMPUTE_STATS=False, EPI_BIAS_RELU=True), fwd32)
    gate = dict(BLOCK_P=tiling.block_p, BLOCK_C=tiling.block_c)
    yield "branch_pool fwd", k.gate_sum._branch_pool_fwd_kernel, gate, ("aff_ptr", "pooled_ptr")
    yield "branch_pool bwd", k.gate_sum._branch_pool_bwd_kernel, gate, ("aff_ptr", "gpooled_ptr", "gaff_ptr")
    yield "gated_sum fwd", k.gate_sum._gated_sum_fwd_kernel, dict(gate, BRANCHES=2), ("aff_ptr", "gate_ptr")
    yield ("gated_sum bwd", k.gate_sum._gated_sum_bwd_kernel, dict(gate, BRANCHES=2),
           ("aff_ptr", "gate_ptr", "ggate_ptr", "gaff_ptr"))


def compile_all(arch: int, dtypes: Sequence[str], channels: Sequence[int]) -> list[list[str]]:
    """Compile each variant to a cubin; rows (kernel, dtype, mid, BLOCK_P, shared bytes, seconds)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    rows = []
    for dtype in dtypes:
        for c in channels:
            for label, fn, const, fp32_ptrs in variants(dtype, c):
                start = time.perf_counter()
                src = ASTSource(fn=fn, signature=_signature(fn, const, fp32_ptrs, dtype), constexprs=const)
                out = triton.compile(src, target=GPUTarget("cuda", arch, 32))
                assert "cubin" in out.asm, f"{label}: no cubin produced"
                rows.append([label, dtype, str(c), str(const["BLOCK_P"]), str(out.metadata.shared),
                             f"{time.perf_counter() - start:.1f}"])
    return rows


def _channels(text: str) -> list[int]:
    try:
        values = [int(c) for c in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"bad value {text!r}, expected comma-separated integers >= 1")
    return values


@_cli.command
def main(argv: Sequence[str] | None = None, *, prog: str = "python -m benchmarks.compile_kernels") -> int:
    p = _cli.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("--arch", type=_cli.positive_int, default=90, help="compute capability x 10 (90 = H100, 80 = A100)")
    p.add_argument("--dtypes", default="fp32,fp16,bf16", help="comma-separated dtypes to compile for")
    p.add_argument("--channels", type=_channels, default="16,64,128", help="branch widths (mid) to compile for")
    p.add_argument("--tf32", action="store_true", help="fp32 dots in TF32 (as with torch's allow_tf32), else IEEE")
    args = p.parse_args(argv)
    import torch
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        p.error("unset TRITON_INTERPRET: the kernels must be imported as compilable JIT functions")
    rows = compile_all(args.arch, args.dtypes.split(","), args.channels)
    print(f"compiled {len(rows)} kernel variants for sm_{args.arch}\n")
    print(markdown_table(["kernel", "dtype", "mid", "BLOCK_P", "shared bytes", "compile s"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
