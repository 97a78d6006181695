"""``python -m hwnas.ops info``: which op backends can run here, and why not."""
from __future__ import annotations

import argparse

from hwnas.ops import available_backends, get_backend


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hwnas.ops", description=__doc__)
    parser.add_argument("command", choices=["info"])
    parser.parse_args(argv)
    print(f"current backend: {get_backend()}")
    for name, (ok, why) in available_backends().items():
        print(f"  {name:<8} {'available' if ok else 'unavailable: ' + why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
