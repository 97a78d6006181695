"""``python -m hwnas.extract`` (``hwnas extract``): features of a folder of images, no identity labels needed.

``hwnas extract --checkpoint runs/x/last.pt --images 'photos/**/*.jpg' --output feats.npz`` runs the model (a
training checkpoint, or ``--model NAME`` with random weights as an untrained baseline) over every matched image
in batches, with the test transforms (resize to the input size, ImageNet mean/std), and writes:

- ``.npz`` (numpy; ``np.load(f)`` needs no pickle): ``features`` float32 (N, D), ``files`` (N,) str,
  ``model`` str, ``source`` str (checkpoint path or "random weights (seed S)"), ``input_size`` int (2,) = (H, W),
  ``flip`` bool;
- ``.pt`` (``torch.load(f, weights_only=True)``): a dict with the same keys, ``features`` a tensor and ``files``
  a list of str.

Row i of ``features`` is the image ``files[i]``; files are sorted and listed as matched (relative patterns give
relative paths), each file once however many patterns match it (``a.jpg``, ``./a.jpg``, ``x//a.jpg`` or a symlink
to it: the form matched first is kept). ``--images`` takes a glob (``**`` matches folders recursively; quote it), a folder (every
.jpg/.jpeg/.png under it) or an image file, and may be repeated.
"""
from __future__ import annotations

import argparse
import glob
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from hwnas import _cli
from hwnas._io import _atomic
from hwnas._model_cli import add_model_source, model_from_args
from hwnas.data.datasets import IMAGE_SUFFIXES
from hwnas.data.loaders import build_test_loader
from hwnas.errors import OutputError, UsageError
from hwnas.evaluation.features import extract_features

PROG = "python -m hwnas.extract"
FORMATS = (".npz", ".pt")


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = _cli.ArgumentParser(prog=prog, description=__doc__)
    add_model_source(p)
    p.add_argument("--images", action="append", required=True, metavar="GLOB|DIR",
                   help="images: a glob like 'dir/**/*.jpg' (quoted), a folder or a file (repeatable)")
    p.add_argument("--output", type=_cli.path, required=True, metavar="FILE",
                   help="features file: .npz (numpy) or .pt (torch), see above")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    p.add_argument("--batch-size", type=_cli.positive_int, default=128, help="images per inference batch")
    p.add_argument("--num-workers", type=_cli.num_workers, default=0, help="DataLoader worker processes")
    p.add_argument("--flip", action="store_true", help="average features of each image and its mirror")
    _cli.add_threads(p)
    _cli.add_device(p)
    p.add_argument("--no-amp", action="store_true", help="disable mixed precision on CUDA")
    _cli.add_progress(p)
    return p


def find_images(patterns: Sequence[str]) -> list[str]:
    """Image files (.jpg/.jpeg/.png) matched by globs, under folders, or named directly; sorted, no duplicates.

    A file matched twice (two patterns, ``./a.jpg`` and ``a.jpg``, ``a//b.jpg``, ``x/../a.jpg`` or a symlink to
    it) is listed once, in the form it was first matched in (patterns in order, each one's matches sorted)."""
    found: dict[str, str] = {}  # resolved path -> the form first listed
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            matches = [str(p) for p in path.rglob("*") if p.is_file()]
        elif path.is_file():
            matches = [pattern]
        else:
            matches = [m for m in glob.glob(pattern, recursive=True) if Path(m).is_file()]
        images = sorted(m for m in matches if Path(m).suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise UsageError(f"no image matches {pattern!r}, --images, expected a glob like 'dir/**/*.jpg', a folder "
                             f"or a file with images ({', '.join(IMAGE_SUFFIXES)})")
        for image in images:
            found.setdefault(os.path.realpath(os.path.normpath(image)), image)
    return sorted(found.values())


def check_output(path: Path, overwrite: bool) -> Path:
    if path.suffix.lower() not in FORMATS:
        raise UsageError(f"unknown format {path.suffix or '(no suffix)'!r}, --output {path}, expected a file name "
                         f"ending in {' or '.join(FORMATS)}")
    if path.is_dir():
        raise OutputError(f"output path is a folder, --output {path}, expected a file name")
    if path.exists() and not overwrite:
        raise OutputError(f"output file exists, --output {path}, expected a new file (or --overwrite)")
    _cli.check_output_file(path)
    return path


def save_features(path: Path, payload: dict[str, object]) -> Path:
    """Write the features file atomically in the format of ``path``'s suffix."""
    if path.suffix.lower() == ".pt":
        def write(tmp: Path) -> None:
            torch.save(payload, tmp)
    else:
        arrays = {k: (v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v)) for k, v in payload.items()}

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
    return _atomic(path, write)


@_cli.command
def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    a = build_parser(prog).parse_args(argv)
    device = _cli.resolve_device(a.device)
    out = check_output(a.output, a.overwrite)
    files = find_images(a.images)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    _cli.apply_threads(a.threads)
    loaded = model_from_args(a, device)
    h, w = loaded.input_size
    print(f"extracting {loaded.name} ({loaded.source}) features of {len(files)} images at {h}x{w}")
    loader = build_test_loader([(f, -1, -1) for f in files], height=h, width=w, batch_size=a.batch_size,
                               num_workers=a.num_workers)
    features, _, _ = extract_features(loaded.model, loader, device=device, flip=a.flip, amp=not a.no_amp,
                                      progress=not a.no_progress)
    if not torch.isfinite(features).all():
        raise UsageError(f"non-finite features from {loaded.source}, --checkpoint, expected a trained model with "
                         "finite weights")
    payload = {"features": features, "files": files, "model": loaded.name, "source": loaded.source,
               "input_size": [h, w], "flip": a.flip}
    save_features(out, payload)
    print(f"wrote {out}: features {tuple(features.shape)} float32 for {len(files)} files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
