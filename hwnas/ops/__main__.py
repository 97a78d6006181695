"""``python -m hwnas.ops info``: which op backends can run here, and why not."""
from __future__ import annotations

from collections.abc import Sequence

from hwnas import _cli
from hwnas.ops import available_backends, get_backend


@_cli.command
def main(argv: Sequence[str] | None = None, *, prog: str = "python -m hwnas.ops") -> int:
    parser = _cli.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("command", choices=["info"], help="info: list the backends and whether each can run here")
    parser.parse_args(argv)
    print(f"current backend: {get_backend()}")
    for name, (ok, why) in available_backends().items():
        print(f"  {name:<8} {'available' if ok else 'unavailable: ' + why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
