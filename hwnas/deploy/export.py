"""``export(model, path, format=...)``: a trained model as a deployable file (the library side of ``hwnas export``).

- ``onnx``: one ``.onnx`` file (images (N, 3, H, W) -> features (N, D)), for onnxruntime, OpenVINO and others;
- ``openvino``: OpenVINO IR (``.xml`` + ``.bin`` beside it), converted from that ONNX graph with fp32 weights
  (``openvino.save_model(..., compress_to_fp16=False)``; https://docs.openvino.ai/2026/openvino-workflow/model-preparation.html).

Load either with :func:`hwnas.deploy.load_session`. Files are written under temporary names and renamed.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from torch import nn

from hwnas.deploy.onnx import export_onnx
from hwnas.deploy.runtimes import _import
from hwnas.errors import OutputError, UsageError
from hwnas.models.cdnet import CDNetBackbone
from hwnas.models.reid import ReIDModel

FORMATS: tuple[str, ...] = ("onnx", "openvino")
_SUFFIX = {"onnx": ".onnx", "openvino": ".xml"}


def export(model: nn.Module, path: str | os.PathLike, *, format: str = "onnx",
           input_size: tuple[int, int] = (256, 128), batch: int | None = None, fused: bool | None = None,
           overwrite: bool = False) -> Path:
    """Write ``model``'s inference graph to ``path`` (suffix ``.onnx`` / ``.xml``) and return the path.

    input_size: (H, W); batch: fixed N or ``None`` (dynamic); fused: BN folded first (default for CNet/CDNet).
    Raises UsageError (bad format/suffix/model), OutputError (the file exists and ``overwrite`` is false),
    RuntimeUnavailableError (``openvino`` not installed), ExportError (the exporter failed).
    """
    if format not in FORMATS:
        raise UsageError(f"unknown export format {format!r}, format argument, expected one of {', '.join(FORMATS)}")
    if not isinstance(model, ReIDModel):
        raise UsageError(f"a {type(model).__name__}, model argument, expected a ReIDModel from hwnas.create_model")
    path = Path(path)
    if path.suffix != _SUFFIX[format]:
        raise UsageError(f"output file {path}, path argument, expected a name ending in {_SUFFIX[format]} for "
                         f"format {format}")
    targets = [path] if format == "onnx" else [path, path.with_suffix(".bin")]
    if not overwrite and any(t.exists() for t in targets):
        raise OutputError(f"{path} exists, path argument, expected a new file (or overwrite=True)")
    fold = isinstance(model.backbone, CDNetBackbone) if fused is None else fused
    if format == "onnx":
        return export_onnx(model, path, fused=fold, image_size=input_size, batch=batch)
    ov = _import("openvino")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".hwnas-export-", dir=path.parent) as tmp:
        onnx_path = export_onnx(model, Path(tmp) / "model.onnx", fused=fold, image_size=input_size, batch=batch)
        xml = Path(tmp) / path.name
        ov.save_model(ov.convert_model(str(onnx_path)), str(xml), compress_to_fp16=False)
        os.replace(xml.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(xml, path)
    return path
