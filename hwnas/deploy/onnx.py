"""ONNX export of a CNet/CDNet (unfused eval model, or BN-folded via ``fuse(..., "eager")``) or of any of its
parts, with an onnxruntime parity check. The compiled ``hwnas::`` ops have no ONNX form, so the fused model is
exported in its plain-torch folded form, which computes the same function.
"""
from __future__ import annotations

import copy
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from hwnas.deploy.fuse import fuse
from hwnas.errors import ExportError, UsageError

log = logging.getLogger(__name__)
OPSET = 17


@dataclass(frozen=True)
class Parity:
    """Largest absolute and relative differences between a runtime's output and eager PyTorch on one input."""

    max_abs: float
    max_rel: float
    ok: bool


OnnxParity = Parity  # the name of the onnxruntime-only check this generalises


def export_graph(net: nn.Module, inputs: Sequence[torch.Tensor], path: str | os.PathLike, *,
                 input_names: Sequence[str], output_names: Sequence[str] = ("output",),
                 dynamic_batch: bool = True, opset: int = OPSET, feature_dim: int | None = None,
                 metadata: dict[str, str] | None = None, image_size: tuple[int, int] | None = None) -> Path:
    """Export ``net(*inputs)`` (eval mode, plain torch ops) as an ONNX graph at the inputs' shapes.

    dynamic_batch: axis 0 of every input and output is symbolic (``batch``); otherwise all shapes are fixed,
    which lets runtimes specialise. feature_dim / metadata: see :func:`_name_output_size`. Written to a
    temporary file and renamed, so ``path`` is never half-written. Raises :class:`ExportError` naming ``path``
    (and, given ``image_size``, the input size and the constraint) when the exporter fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {n: {0: "batch"} for n in (*input_names, *output_names)} if dynamic_batch else None
    fd, tmp = tempfile.mkstemp(suffix=".onnx.tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The TorchScript exporter is deprecated in favour of the dynamo one, which needs onnxscript
            # (not a dependency); it still exports these conv/linear/pool graphs exactly.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(net, tuple(inputs), tmp, input_names=list(input_names),
                              output_names=list(output_names), dynamic_axes=axes, opset_version=opset, dynamo=False)
        if feature_dim is not None or metadata:
            _name_output_size(tmp, output_names[0], feature_dim, metadata or {})
        os.replace(tmp, path)
    except (RuntimeError, torch.onnx.errors.OnnxExporterError) as e:
        if image_size is not None:
            raise export_error(e, image_size, path) from None
        raise ExportError(f"ONNX export of {type(net).__name__} failed ({e}), {path}, expected a graph of "
                          f"standard convolution/linear/pooling ops") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def export_onnx(model: nn.Module, path: str | os.PathLike, *, fused: bool = False,
                image_size: tuple[int, int] = (256, 128), opset: int = OPSET, batch: int | None = None,
                metadata: dict[str, str] | None = None) -> Path:
    """Export the inference model (images (N, 3, H, W) -> features (N, D)) to ``path``.

    fused: export the BN-folded model (``fuse(model, "eager")``) instead of the eval-mode source model.
    batch: ``None`` gives a dynamic batch axis; an integer fixes N (runtimes may then specialise).
    The output ``features`` gets its fixed size D (the exporter leaves a symbolic name such as
    ``Concatfeatures_dim_1``); ``metadata`` goes into the model's metadata_props. Both need the ``onnx``
    package (without it the file is left as exported). Written to a temporary file and renamed, so ``path`` is
    never left half-written. Raises :class:`ExportError` naming the input size and the constraint when the model
    does not run, or cannot be exported, at that size.
    """
    _check_size(model, image_size, Path(path))
    net = fuse(model, "eager") if fused else _eval_copy(model)
    dummy = torch.zeros(batch or 1, 3, *image_size)
    with torch.no_grad():
        num_features = int(net(dummy).shape[1])
    path = export_graph(net, (dummy,), path, input_names=("images",), output_names=("features",),
                        dynamic_batch=batch is None, opset=opset, feature_dim=num_features, metadata=metadata,
                        image_size=image_size)
    log.info("exported %s (%s) to %s", type(net).__name__, "fused" if fused else "unfused", path)
    return path


def _name_output_size(path: str, output: str, feature_dim: int | None, metadata: dict[str, str]) -> None:
    """Give ``output`` its fixed size (N, D) and add ``metadata`` to metadata_props (skipped without ``onnx``)."""
    try:
        import onnx
    except ImportError:
        log.warning("onnx is not installed: the output size of %s stays symbolic", path)
        return
    proto = onnx.load(path)
    for out in proto.graph.output:
        if out.name == output and feature_dim is not None:
            dim = out.type.tensor_type.shape.dim[1]
            dim.Clear()
            dim.dim_value = feature_dim
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(proto, path)


def compare(got: torch.Tensor, want: torch.Tensor, atol: float = 1e-4, rtol: float = 1e-3) -> Parity:
    """Parity of two feature tensors of the same shape (raises :class:`ExportError` on a shape mismatch)."""
    if got.shape != want.shape:
        raise ExportError(f"runtime output has shape {tuple(got.shape)}, parity check, expected {tuple(want.shape)}")
    diff = (got.float() - want.float()).abs()
    max_abs = float(diff.max()) if diff.numel() else 0.0
    max_rel = float((diff / want.float().abs().clamp_min(1e-6)).max()) if diff.numel() else 0.0
    finite = bool(torch.isfinite(got).all())
    return Parity(max_abs, max_rel, finite and bool(torch.allclose(got.float(), want.float(), atol=atol, rtol=rtol)))


def check_onnx_parity(model: nn.Module, path: str | os.PathLike, images: torch.Tensor, *, atol: float = 1e-4,
                      rtol: float = 1e-3) -> Parity:
    """Run ``path`` in onnxruntime (CPU) on ``images`` and compare with the eval-mode ``model``."""
    from hwnas.deploy.runtimes import load_session

    got = load_session(path, "onnxruntime", threads=None)(images.detach().cpu())
    with torch.no_grad():
        want = _eval_copy(model)(images).cpu()
    return compare(got, want, atol, rtol)


def _eval_copy(model: nn.Module) -> nn.Module:
    """The model in eval mode, copying it only when it is in training mode (the caller's stays as it was)."""
    return model if not model.training else copy.deepcopy(model).eval()


def _check_size(model: nn.Module, image_size: tuple[int, int], path: Path) -> None:
    """The model must run at ``image_size`` before there is anything to export."""
    from hwnas.models import check_input_size, min_input_size

    name, config = getattr(model, "model_name", None), getattr(model, "config", None)
    if name is None or not isinstance(config, dict):
        return
    options = {k: v for k, v in config.items() if k != "num_classes"}
    try:
        check_input_size(name, tuple(image_size), **options)
    except UsageError:
        mh, mw = min_input_size(name, **options)
        raise ExportError(f"input size {image_size[0]}x{image_size[1]} is too small for {name}, ONNX export to "
                          f"{path}, expected at least {mh}x{mw} (height x width in pixels)") from None


def export_error(e: BaseException, image_size: tuple[int, int], path: str | os.PathLike) -> ExportError:
    """An exporter failure as :class:`ExportError` naming the input size and, where known, the constraint."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    h, w = image_size
    if "adaptive_avg_pool2d" in text and "factor" in text:
        constraint = ("feature maps that are whole multiples of every adaptive pooling's output size (ONNX has no "
                      "overlapping adaptive pooling): choose an input size whose pooled feature maps divide evenly")
    else:
        constraint = "an input size and graph the TorchScript ONNX exporter supports"
    return ExportError(f"ONNX export failed at input size {h}x{w} ({type(e).__name__}: {text[:200]}), {path}, "
                       f"expected {constraint}")
