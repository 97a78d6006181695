"""Deployment: BN-folded, fused inference models (compiled C++/CUDA path) and ONNX export.

``fuse(model, backend="cpp"|"cuda"|"eager")`` returns an inference model of a trained CNet/CDNet;
``export_onnx`` / ``check_onnx_parity`` write a fused or unfused model to ONNX and compare it with
onnxruntime. See docs/deployment.md.
"""
from hwnas.deploy.fuse import FusedReIDModel, check_backend, fuse
from hwnas.deploy.onnx import OnnxParity, check_onnx_parity, export_onnx

__all__ = ["FusedReIDModel", "OnnxParity", "check_backend", "check_onnx_parity", "export_onnx", "fuse"]
