"""The pure-Python packages ``benchmarks/gpu_suite.sh --prepare-wheels`` carries to a machine without a registry.

    python -m benchmarks._suite_wheels        # prints name==version, one per line

Walks the requirements of hwnas (its install requirements and the ``dev`` and ``triton`` extras) through the
distributions installed here, skipping the trees of the binary stack a CUDA image provides (torch, triton, numpy, scipy,
matplotlib, pillow, onnx, onnxruntime: wheels built here would not fit its Python anyway), and prints every
distribution of that closure whose wheel is pure Python (``Root-Is-Purelib: true``). The suite installs with
``pip install --no-index --find-links DIR -e .[dev,triton]``, so a carried wheel is used only when the machine lacks
that package: carrying more than needed is harmless.
"""
from __future__ import annotations

import importlib.metadata as md
import sys
from collections.abc import Iterable

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROVIDED_BY_THE_IMAGE = {"torch", "triton", "numpy", "scipy", "matplotlib", "pillow", "onnx", "onnxruntime"}


def _requirements(dist: md.Distribution, extras: Iterable[str] = ()) -> list[Requirement]:
    out = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in (*extras, "")):
            out.append(req)
    return out


def _pure(dist: md.Distribution) -> bool:
    wheel = dist.read_text("WHEEL") or ""
    return any(line.strip().lower() == "root-is-purelib: true" for line in wheel.splitlines())


def closure(root: str = "hwnas", extras: Iterable[str] = ("dev", "triton")) -> list[tuple[str, str]]:
    """(name, version) of the pure-Python distributions hwnas[extras] needs, outside the image's stack."""
    seen: set[str] = {canonicalize_name(root)}
    todo = _requirements(md.distribution(root), extras)
    found: dict[str, str] = {}
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen or name in PROVIDED_BY_THE_IMAGE:
            continue
        seen.add(name)
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            print(f"warning: {req.name} is not installed here; it is not carried", file=sys.stderr)
            continue
        if _pure(dist):
            found[dist.metadata["Name"]] = dist.version
        todo.extend(_requirements(dist))
    return sorted(found.items(), key=lambda kv: kv[0].lower())


def main() -> int:
    for name, version in closure():
        print(f"{name}=={version}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
