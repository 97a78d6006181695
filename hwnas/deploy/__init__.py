"""Deployment: BN-folded, fused inference models (compiled C++/CUDA path), ONNX/OpenVINO export, and ready
inference sessions on four runtimes (eager PyTorch, hwnas's compiled C++ ops, onnxruntime, OpenVINO).

``session(model, runtime="onnxruntime", input_size=(256, 128), batch=None, threads=1)`` returns a callable
``images -> features``; ``export(model, path, format="onnx"|"openvino")`` writes a deployable file;
``fuse(model, backend="cpp"|"cuda"|"eager")`` returns the folded model. See docs/deployment.md.
"""
from hwnas.deploy.export import FORMATS, export
from hwnas.deploy.fuse import FusedReIDModel, check_backend, fuse, fuse_module
from hwnas.deploy.heap import heap_state, steady_heap
from hwnas.deploy.onnx import OnnxParity, Parity, check_onnx_parity, export_onnx
from hwnas.deploy.runtimes import (
    RUNTIMES,
    Session,
    available_runtimes,
    check_parity,
    compile_module,
    load_session,
    runtime_status,
    runtime_version,
    session,
)

__all__ = [
    "FORMATS",
    "RUNTIMES",
    "FusedReIDModel",
    "OnnxParity",
    "Parity",
    "Session",
    "available_runtimes",
    "check_backend",
    "check_onnx_parity",
    "check_parity",
    "compile_module",
    "export",
    "export_onnx",
    "fuse",
    "fuse_module",
    "heap_state",
    "load_session",
    "runtime_status",
    "runtime_version",
    "session",
    "steady_heap",
]
