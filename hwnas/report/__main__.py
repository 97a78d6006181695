"""``python -m hwnas.report <command>``: each command lives in its own module with ``add_parser``/``run``."""
from __future__ import annotations

import argparse
import importlib

# command -> module providing add_arguments(parser) and run(args) -> int
COMMANDS: dict[str, str] = {
    "flops": "hwnas.report.flops",
    "model": "hwnas.report.model_report",
    "tsne": "hwnas.report.tsne",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hwnas.report", description="hwnas reports")
    sub = parser.add_subparsers(dest="command", required=True)
    modules = {}
    for name, modname in COMMANDS.items():
        try:
            mod = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name != modname:
                raise
            continue
        modules[name] = mod
        mod.add_arguments(sub.add_parser(name, help=(mod.__doc__ or "").strip().splitlines()[0]))
    args = parser.parse_args(argv)
    return modules[args.command].run(args)


if __name__ == "__main__":
    raise SystemExit(main())
