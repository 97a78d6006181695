"""``hwnas <command> ...``: one entry point for every tool (``python -m hwnas`` lists them).

Each command is also its own module (``python -m hwnas.search`` == ``hwnas search``); this file only
dispatches. The flags are the same everywhere for the same thing: ``--input-size HxW``, ``--output DIR``,
``--data-root``, ``--dataset``, ``--threads``, ``--device``, ``--seed``.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from hwnas._cli import fail
from hwnas._version import __version__

# command -> (module with main(argv) -> int, one-line summary); in the order of the workflow
COMMANDS: dict[str, tuple[str, str]] = {
    "search": ("hwnas.search.__main__", "Top-k Sample Search of a CNet/CDNet genotype, optionally latency-aware"),
    "train": ("hwnas.train", "train a model (a searched genotype, a preset or a baseline) on a ReID dataset"),
    "evaluate": ("hwnas.evaluate", "rank-1/5/10, mAP and mINP of a checkpoint on a dataset's query/gallery"),
    "extract": ("hwnas.extract", "features of a folder of images (a checkpoint or an untrained model) to .npz/.pt"),
    "export": ("hwnas.export", "a checkpoint to ONNX (optionally BN-folded), checked against PyTorch"),
    "report": ("hwnas.report.__main__", "FLOPs/params (the paper's tables), model reports, t-SNE, a run's figures"),
    "latency": ("hwnas.latency.__main__", "latency tables: build, predict, calibrate, show, validate"),
    "data": ("hwnas.data.__main__", "datasets: generate synthetic data, inspect a dataset folder"),
    "ops": ("hwnas.ops.__main__", "kernel backends (eager, batched, triton, cpp): which can run here"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: hwnas <command> [options]   (hwnas {__version__})", "",
             "Hardware-aware architecture search for person re-identification (CNet/CDNet).", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "'hwnas <command> --help' describes a command's options."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if args[0] in ("-V", "--version"):
        print(f"hwnas {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:  # one error line; 'hwnas --help' lists the commands with their summaries
        return fail(f"unknown command {name!r}, hwnas <command>, expected one of {', '.join(COMMANDS)} "
                    "('hwnas --help' describes them)")
    module = importlib.import_module(COMMANDS[name][0])
    return module.main(rest, prog=f"hwnas {name}")


if __name__ == "__main__":
    raise SystemExit(main())
