"""Search-step benchmark: forward + backward of the CDNet supernet (top-2), eager vs torch.compile vs fused.

    python -m benchmarks.search_step --device cuda                  # batch 64, 256x128 (issue 6 target)
    python -m benchmarks.search_step --device cpu --batch-size 2 --input-size 64x32 --backends eager,batched

Each column builds the same seeded supernet (hwnas.search.supernet.SuperNet, width 1.0, k = 2) with fixed
random alphas (so every column computes the same candidates), then times ``zero_grad; forward; softmax loss
on every classifier; backward`` (the weight step of the search), median and IQR over ``--repeats`` after
``--warmup`` steps. Columns: ``eager``, ``compiled`` (torch.compile of the eager supernet), ``batched``,
``triton``. Before timing, each column's gradients are compared with the first column's (max abs
difference over max abs gradient; training-mode BN on small batches amplifies rounding, and the
``compiled`` column draws different dropout masks, so this is a sanity check, not a test).
Targets (issue 6, H100): triton >= 2x eager and >= 1.3x compiled.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

import torch
from torch.nn import functional as F

from benchmarks._device import (
    COLUMNS,
    backend_runner,
    check_output_file,
    describe,
    markdown_table,
    parse_backends,
    ratio_cell,
    time_ms,
    write_text_atomic,
)
from hwnas import _cli, ops
from hwnas.models._limits import check_input_size


def build_supernet(device: torch.device, width_mult: float, num_classes: int, seed: int = 0) -> torch.nn.Module:
    from hwnas.search.supernet import SuperNet

    torch.manual_seed(seed)
    net = SuperNet("cdnet", num_classes=num_classes, width_mult=width_mult, topk=2).to(device).train()
    with torch.no_grad():
        net.alphas.copy_(torch.randn(net.alphas.shape, generator=torch.Generator().manual_seed(seed)))
    return net


def step_fn(net: torch.nn.Module, model, backend: str, x: torch.Tensor, labels: torch.Tensor):
    """One weight step without the optimizer update (its cost does not depend on the backend)."""
    def step() -> None:
        net.zero_grad(set_to_none=True)
        with ops.use_backend(backend):
            out = model(x)
            loss = sum(F.cross_entropy(logits, labels) for logits in out.logits)
        loss.backward()
    return step


def run(args: argparse.Namespace) -> list[list[str]]:
    device = args.device
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = args.tf32
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch_size, 3, *args.input_size, generator=g).to(device)
    labels = torch.randint(0, args.num_classes, (args.batch_size,), generator=g).to(device)
    results: dict[str, tuple[float, float]] = {}
    errors: dict[str, float] = {}
    reference = None
    for name in args.backends:
        net = build_supernet(device, args.width_mult, args.num_classes)
        model, backend = backend_runner(name, net)
        ok, why = ops.available_backends().get(backend, (False, f"unknown ops backend {backend!r}"))
        if not ok:
            print(f"skip {name}: {why}")
            continue
        step = step_fn(net, model, backend, x, labels)
        torch.manual_seed(args.seed)  # same dropout masks in every column (torch.compile draws its own)
        step()  # one checked step before timing: gradients against the first (eager) column
        grads = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
        reference = grads if reference is None else reference
        errors[name] = ((grads - reference).abs().max() / reference.abs().max()).item()
        results[name] = time_ms(step, device, args.warmup, args.repeats)
        print(f"{name}: median {results[name][0]:.2f} ms", file=sys.stderr, flush=True)  # as each column ends
    base = results.get("eager", (None,))[0]
    comp = results.get("compiled", (None,))[0]
    return [[n, f"{m:.2f}", f"{iqr:.2f}", f"{args.batch_size / m * 1e3:.1f}", ratio_cell(base, m), ratio_cell(comp, m),
             f"{errors[n]:.1e}"] for n, (m, iqr) in results.items()]


PROG = "python -m benchmarks.search_step"


def build_parser(prog: str = PROG) -> _cli.ArgumentParser:
    p = _cli.ArgumentParser(prog=prog, description=__doc__)
    _cli.add_device(p)
    p.add_argument("--batch-size", type=_cli.positive_int, default=64, help="images per step")
    _cli.add_input_size(p, (256, 128))
    p.add_argument("--width-mult", type=_cli.width_mult, default=1.0, help="channel width multiplier")
    p.add_argument("--num-classes", type=_cli.int_at_least(2), default=751, help="classifier size (Market-1501: 751)")
    p.add_argument("--backends", type=parse_backends, default="eager,compiled,batched,triton", metavar="B1,B2,...",
                   help=f"columns, from {', '.join(COLUMNS)}")
    p.add_argument("--warmup", type=_cli.nonnegative_int, default=3, help="untimed steps per column")
    p.add_argument("--repeats", type=_cli.positive_int, default=10, help="timed steps per column")
    _cli.add_seed(p)
    p.add_argument("--tf32", action="store_true", help="allow TF32 in cuDNN/matmul and the Triton dots")
    _cli.add_threads(p)
    p.add_argument("--output", type=_cli.path, metavar="FILE", help="also write the table (Markdown) to this file")
    return p


@_cli.command
def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    args.device = _cli.resolve_device(args.device)
    if args.output is not None:
        check_output_file(args.output)
    _cli.apply_threads(args.threads)
    check_input_size("cdnet", args.input_size, "--input-size")
    rows = run(args)
    h, w = args.input_size
    text = (f"search step (CDNet supernet, top-2, batch {args.batch_size}, {h}x{w}, width {args.width_mult})\n"
            f"device: {describe(args.device)}\n\n"
            + markdown_table(["backend", "median ms", "IQR ms", "img/s", "vs eager", "vs compiled",
                               "grad err vs first"], rows))
    print(text)
    if args.output is not None:
        write_text_atomic(str(args.output), text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
