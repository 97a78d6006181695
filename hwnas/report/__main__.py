"""``python -m hwnas.report <command>``: each command lives in its own module with ``add_arguments``/``run``."""
from __future__ import annotations

import importlib
from collections.abc import Sequence

from hwnas import _cli

PROG = "python -m hwnas.report"
# command -> module providing add_arguments(parser) and run(args) -> int
COMMANDS: dict[str, str] = {
    "flops": "hwnas.report.flops",
    "model": "hwnas.report.model_report",
    "tsne": "hwnas.report.tsne",
    "plots": "hwnas.report.plots",
}


@_cli.command
def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    parser = _cli.ArgumentParser(prog=prog, description="hwnas reports: FLOPs/params tables, model reports, t-SNE, run figures")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(COMMANDS) + "}")
    modules = {name: importlib.import_module(modname) for name, modname in COMMANDS.items()}
    for name, mod in modules.items():
        summary = (mod.__doc__ or "").strip().splitlines()[0]
        mod.add_arguments(sub.add_parser(name, help=summary, description=mod.__doc__,
                                         formatter_class=_cli.HelpFormatter))
    args = parser.parse_args(argv)
    return modules[args.command].run(args)


if __name__ == "__main__":
    raise SystemExit(main())
