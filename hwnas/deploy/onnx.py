"""ONNX export of a CNet/CDNet (unfused eval model, or BN-folded via ``fuse(..., "eager")``) with an
onnxruntime parity check. The compiled ``hwnas::`` ops have no ONNX form, so the fused model is exported
in its plain-torch folded form, which computes the same function.
"""
from __future__ import annotations

import copy
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from hwnas.deploy.fuse import fuse
from hwnas.errors import ExportError, UsageError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnnxParity:
    """Largest absolute and relative differences between onnxruntime and PyTorch on the same input."""

    max_abs: float
    max_rel: float
    ok: bool


def export_onnx(model: nn.Module, path: str | os.PathLike, *, fused: bool = False,
                image_size: tuple[int, int] = (256, 128), opset: int = 17,
                metadata: dict[str, str] | None = None) -> Path:
    """Export the inference model (images (N, 3, H, W) -> features (N, D), dynamic N) to ``path``.

    fused: export the BN-folded model (``fuse(model, "eager")``) instead of the eval-mode source model.
    The output ``features`` gets its fixed size D (the exporter leaves a symbolic name such as
    ``Concatfeatures_dim_1``); ``metadata`` goes into the model's metadata_props. Both need the ``onnx``
    package (without it the file is left as exported). Written to a temporary file and renamed, so ``path`` is
    never left half-written. Raises :class:`ExportError` naming the input size and the constraint when the model
    does not run, or cannot be exported, at that size.
    """
    path = Path(path)
    _check_size(model, image_size, path)
    net = fuse(model, "eager") if fused else _eval_copy(model)
    dummy = torch.zeros(1, 3, *image_size)
    with torch.no_grad():
        num_features = int(net(dummy).shape[1])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx.tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated in favour of the dynamo one, which needs onnxscript
            # (not a dependency); it still exports these conv/linear/pool graphs exactly.
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(net, (dummy,), tmp, input_names=["images"], output_names=["features"],
                              dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
                              opset_version=opset, dynamo=False)
        _name_output_size(tmp, num_features, metadata or {})
        os.replace(tmp, path)
    except (RuntimeError, torch.onnx.errors.OnnxExporterError) as e:
        raise export_error(e, image_size, path) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    log.info("exported %s (%s) to %s", type(net).__name__, "fused" if fused else "unfused", path)
    return path


def _name_output_size(path: str, num_features: int, metadata: dict[str, str]) -> None:
    """Give the output ``features`` its fixed size (N, D) and add ``metadata`` (skipped without ``onnx``)."""
    try:
        import onnx
    except ImportError:
        log.warning("onnx is not installed: the output size of %s stays symbolic", path)
        return
    proto = onnx.load(path)
    for out in proto.graph.output:
        if out.name == "features":
            dim = out.type.tensor_type.shape.dim[1]
            dim.Clear()
            dim.dim_value = num_features
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.save(proto, path)


def check_onnx_parity(model: nn.Module, path: str | os.PathLike, images: torch.Tensor, *, atol: float = 1e-4,
                      rtol: float = 1e-3) -> OnnxParity:
    """Run ``path`` in onnxruntime (CPU) on ``images`` and compare with the eval-mode ``model``."""
    import onnxruntime as ort  # optional dependency (extra 'dev')

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(["features"], {"images": images.detach().cpu().numpy()})[0])
    with torch.no_grad():
        want = _eval_copy(model)(images).cpu()
    if got.shape != want.shape:
        raise ExportError(f"onnxruntime output has shape {tuple(got.shape)}, {path}, expected {tuple(want.shape)}")
    diff = (got - want).abs()
    max_abs = float(diff.max())
    max_rel = float((diff / want.abs().clamp_min(1e-6)).max())
    return OnnxParity(max_abs, max_rel, bool(torch.allclose(got, want, atol=atol, rtol=rtol)))


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
