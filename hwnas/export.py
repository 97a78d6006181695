"""``python -m hwnas.export`` (``hwnas export``): write a model for deployment, checked against PyTorch.

``hwnas export --checkpoint runs/x/last.pt --format onnx [--fuse-bn] --output model.onnx`` exports the
inference model (a training checkpoint, or ``--model NAME`` with random weights): input ``images`` (N, 3, H, W)
float32 normalised with ImageNet mean/std, output ``features`` (N, D); the batch axis N is dynamic. ``--fuse-bn``
folds every BatchNorm into the convolution before it (CNet/CDNet). The file is then run in onnxruntime on a
batch of 2 random images and compared with the eager PyTorch model; only a file that agrees (within
``--atol``, scaled by the largest feature magnitude when above 1, and ``--rtol``) is written. The model name, input size, feature size and normalisation are stored in the
file's metadata_props.
"""
from __future__ import annotations

import argparse
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from hwnas import _cli
from hwnas._io import file_mode
from hwnas._model_cli import add_model_source, model_from_args
from hwnas.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from hwnas.errors import ExportError, OutputError, RuntimeUnavailableError, UsageError

PROG = "python -m hwnas.export"
FORMATS = ("onnx",)


def _max_opset() -> int:
    try:
        from torch.onnx import _constants
        return int(_constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET)
    except (ImportError, AttributeError):  # a private constant: fall back to torch 2.x's value
        return 20


def _opset(text: str) -> int:
    """argparse type: an opset the TorchScript ONNX exporter can write (13 and up: the ops CNet/CDNet need)."""
    value = _cli.int_at_least(13)(text)
    if value > _max_opset():
        raise argparse.ArgumentTypeError(f"bad value {text!r}, expected an integer in 13..{_max_opset()} (the "
                                         "TorchScript ONNX exporter's range)")
    return value


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = _cli.ArgumentParser(prog=prog, description=__doc__)
    add_model_source(p)
    p.add_argument("--format", choices=FORMATS, default="onnx", help="file format")
    p.add_argument("--fuse-bn", action="store_true", help="fold BatchNorm into the convolutions (CNet/CDNet)")
    p.add_argument("--output", type=_cli.path, required=True, metavar="FILE", help="the model file to write (.onnx)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    p.add_argument("--opset", type=_opset, default=17, metavar="N",
                   help=f"ONNX opset version, 13..{_max_opset()} (the TorchScript exporter's range)")
    p.add_argument("--atol", type=_cli.positive_float, default=1e-4,
                   help="parity: absolute tolerance, times the largest feature magnitude when that is above 1")
    p.add_argument("--rtol", type=_cli.positive_float, default=1e-3, help="parity: relative tolerance")
    p.add_argument("--skip-check", action="store_true",
                   help="write without the onnxruntime parity check (not recommended)")
    _cli.add_threads(p)
    return p


def _check_output(path: Path, overwrite: bool) -> None:
    if path.suffix.lower() != ".onnx":
        raise UsageError(f"unknown suffix {path.suffix or '(none)'!r}, --output {path}, expected a file name ending "
                         "in .onnx")
    if path.is_dir():
        raise OutputError(f"output path is a folder, --output {path}, expected a file name")
    if path.exists() and not overwrite:
        raise OutputError(f"output file exists, --output {path}, expected a new file (or --overwrite)")
    _cli.check_output_file(path)


def _check_runtime(skip: bool) -> None:
    if skip:
        return
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise RuntimeUnavailableError("onnxruntime is not installed, hwnas export (the parity check), expected "
                                      "pip install 'hwnas[onnx]' (or --skip-check)") from None


def _check_parity(model: torch.nn.Module, path: str, size: tuple[int, int], a: argparse.Namespace) -> None:
    """onnxruntime vs the eager model on 2 random images: |ort - torch| <= atol * max(1, S) + rtol * |torch|, with
    S the largest feature magnitude (float32 rounding grows with the activations; a barely trained model's can
    reach 1e6)."""
    from hwnas.deploy import check_onnx_parity

    images = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        scale = float(model(images).abs().max())
    atol = a.atol * max(1.0, scale)
    parity = check_onnx_parity(model, path, images, atol=atol, rtol=a.rtol)
    print(f"parity vs eager PyTorch (onnxruntime CPU, batch 2): max abs diff {parity.max_abs:.2e} on features up "
          f"to {scale:.3g} in magnitude")
    if not parity.ok:
        raise ExportError(f"onnxruntime differs from PyTorch (max abs {parity.max_abs:.3g}, features up to "
                          f"{scale:.3g}), {a.output}, expected agreement within --atol {a.atol} (x max(1, "
                          f"{scale:.3g})) and --rtol {a.rtol}; nothing written")


@_cli.command
def main(argv: Sequence[str] | None = None, *, prog: str = PROG) -> int:
    from hwnas.deploy import export_onnx
    from hwnas.models.reid import ReIDModel

    a = build_parser(prog).parse_args(argv)
    _check_output(a.output, a.overwrite)
    _check_runtime(a.skip_check)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    _cli.apply_threads(a.threads)
    loaded = model_from_args(a, "cpu")
    if a.fuse_bn and not (isinstance(loaded.model, ReIDModel) and loaded.name in ("cnet", "cdnet")):
        raise UsageError(f"cannot fold BatchNorm of {loaded.name}, --fuse-bn, expected a cnet or cdnet model (or no "
                         "--fuse-bn)")
    h, w = loaded.input_size
    meta = {"hwnas_model": loaded.name, "hwnas_source": loaded.source, "input_size": f"{h}x{w}",
            "feature_dim": str(loaded.model.num_features) if hasattr(loaded.model, "num_features") else "",
            "input_mean": ",".join(map(str, IMAGENET_MEAN)), "input_std": ",".join(map(str, IMAGENET_STD)),
            "fused_bn": str(a.fuse_bn).lower()}
    # the folders are made now, like extract's, and removed again if the export fails before writing
    with _cli.output_dir_for(a.output.parent if str(a.output.parent) else Path(".")):
        fd, tmp = tempfile.mkstemp(dir=a.output.parent, prefix=f".{a.output.name}.", suffix=".tmp.onnx")
        os.close(fd)
        try:
            try:
                export_onnx(loaded.model, tmp, fused=a.fuse_bn, image_size=(h, w), opset=a.opset, metadata=meta)
            except ExportError:
                raise
            except (RuntimeError, TypeError, ValueError) as e:
                raise ExportError(f"ONNX export failed ({type(e).__name__}: {str(e).splitlines()[0][:300]}), "
                                  f"{loaded.name} at {h}x{w}, expected an exportable model") from None
            if not a.skip_check:
                _check_parity(loaded.model, tmp, (h, w), a)
            os.chmod(tmp, file_mode())  # as a plain open() would create it (0644 under umask 022), not mkstemp's 0600
            os.replace(tmp, a.output)
        finally:
            Path(tmp).unlink(missing_ok=True)
    dim = meta["feature_dim"] or "D"
    print(f"wrote {a.output}: images (batch, 3, {h}, {w}) -> features (batch, {dim}), {loaded.name} "
          f"({loaded.source}){', BatchNorm folded' if a.fuse_bn else ''}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
