"""Ready inference sessions of a CNet/CDNet (or of one of its parts) on a deployment runtime.

One small interface over four runtimes::

    sess = hwnas.deploy.session(model, runtime="onnxruntime", input_size=(256, 128), batch=None, threads=1)
    features = sess(images)              # (N, 3, H, W) float32 -> (N, D) float32, torch tensors on the CPU

- ``eager``: the eval-mode PyTorch model as it is (the reference every other runtime is checked against);
- ``cpp``: the BN-folded model on hwnas's compiled CPU ops (:func:`hwnas.deploy.fuse`, ``hwnas._C``);
- ``onnxruntime``: the BN-folded model exported to ONNX, run by onnxruntime's CPU execution provider
  (https://onnxruntime.ai/docs/api/python/api_summary.html);
- ``openvino``: the same ONNX graph compiled by OpenVINO for its CPU plugin, fp32
  (https://docs.openvino.ai/2026/openvino-workflow/running-inference.html).

``threads`` fixes the runtime's intra-op threads (``None``: the runtime's default); with one thread every runtime
computes on the calling thread, so its thread CPU time is the computation's. ``batch=None`` accepts any batch
size; an integer fixes it (the graph is exported with static shapes, which the runtimes can specialise).
onnxruntime and OpenVINO are optional dependencies (``pip install hwnas[onnxruntime]``, ``hwnas[openvino]``);
a missing one raises :class:`~hwnas.errors.RuntimeUnavailableError` saying what to install.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from hwnas.deploy.fuse import check_backend, fuse, fuse_module
from hwnas.deploy.onnx import Parity, compare, export_graph, export_onnx
from hwnas.errors import RuntimeUnavailableError, UsageError
from hwnas.models.cdnet import CDNetBackbone
from hwnas.models.reid import ReIDModel

RUNTIMES: tuple[str, ...] = ("eager", "cpp", "onnxruntime", "openvino")
_PACKAGES = {"onnxruntime": ("onnxruntime", "onnxruntime"), "openvino": ("openvino", "openvino")}
Shape = tuple[int | None, ...]


def runtime_status(runtime: str) -> tuple[bool, str]:
    """(usable here, why not) for one runtime name."""
    _check_name(runtime)
    if runtime == "eager":
        return True, ""
    if runtime == "cpp":
        try:
            check_backend("cpp")
        except RuntimeUnavailableError as e:
            return False, str(e)
        return True, ""
    module, pip_name = _PACKAGES[runtime]
    try:
        importlib.import_module(module)
    except ImportError as e:
        return False, (f"{runtime} is not installed ({e}), runtime {runtime!r}, expected `pip install "
                       f"hwnas[{runtime}]` (or `pip install {pip_name}`)")
    return True, ""


def available_runtimes() -> dict[str, tuple[bool, str]]:
    """Every runtime name -> (usable here, why not)."""
    return {r: runtime_status(r) for r in RUNTIMES}


def runtime_version(runtime: str) -> str:
    """The version string of the library behind ``runtime`` (torch for eager/cpp)."""
    _check_name(runtime)
    if runtime in ("eager", "cpp"):
        return torch.__version__
    try:
        return str(importlib.import_module(_PACKAGES[runtime][0]).__version__)
    except ImportError:
        return "not installed"


class _Runner(Protocol):
    def bind(self, inputs: Sequence[torch.Tensor]) -> Callable[[], Any]: ...

    def output(self, raw: Any) -> torch.Tensor: ...


class Session:
    """A ready inference session on one runtime: ``session(*inputs) -> output`` (torch tensors on the CPU).

    ``input_shapes``: the shape of each input, ``None`` where the axis is dynamic (the batch when the session
    was made with ``batch=None``). ``bind(*inputs)`` converts the inputs once into the runtime's own form and
    returns a zero-argument call that runs the runtime on them: what latency tables and benchmarks time.
    Raises :class:`~hwnas.errors.UsageError` for an input of the wrong shape.
    """

    def __init__(self, runtime: str, runner: _Runner, input_shapes: Sequence[Shape], threads: int | None,
                 description: str) -> None:
        self.runtime = runtime
        self.device = "cpu"
        self.threads = threads
        self.input_shapes = tuple(tuple(s) for s in input_shapes)
        self.description = description
        self._runner = runner

    def _check(self, inputs: Sequence[torch.Tensor]) -> None:
        if len(inputs) != len(self.input_shapes):
            raise UsageError(f"{len(inputs)} inputs, {self.description}, expected {len(self.input_shapes)}")
        for i, (x, want) in enumerate(zip(inputs, self.input_shapes)):
            ok = x.dim() == len(want) and all(w is None or w == d for w, d in zip(want, x.shape))
            if not ok or x.dtype != torch.float32 or x.device.type != "cpu":
                shape = "x".join("N" if w is None else str(w) for w in want)
                raise UsageError(f"input {i} of shape {tuple(x.shape)} ({x.dtype}, {x.device}), {self.description}, "
                                 f"expected a float32 CPU tensor of shape {shape}")

    def bind(self, *inputs: torch.Tensor) -> Callable[[], Any]:
        self._check(inputs)
        return self._runner.bind(inputs)

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self._runner.output(self.bind(*inputs)())

    def __repr__(self) -> str:
        return f"Session({self.description}, runtime={self.runtime!r}, threads={self.threads}, inputs={self.input_shapes})"


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` intra-op torch threads (restored afterwards; nothing when already set)."""
    if threads is None or torch.get_num_threads() == threads:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _TorchRunner:
    """eager / cpp: a torch module under ``inference_mode`` with a fixed thread count."""

    def __init__(self, module: nn.Module, threads: int | None, channels_last: bool) -> None:
        self.module, self.threads, self.channels_last = module, threads, channels_last

    def bind(self, inputs: Sequence[torch.Tensor]) -> Callable[[], Any]:
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        xs = [x.contiguous(memory_format=fmt) if x.dim() == 4 else x.contiguous() for x in inputs]
        module, threads = self.module, self.threads

        def call() -> torch.Tensor:
            with torch_threads(threads), torch.inference_mode():
                return module(*xs)
        return call

    def output(self, raw: torch.Tensor) -> torch.Tensor:
        return raw.clone()  # a normal tensor (inference-mode tensors cannot enter autograd later)


def _numpy(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.detach().cpu().numpy())


class _OrtRunner:
    """onnxruntime, CPU execution provider, all graph optimisations, sequential execution."""

    def __init__(self, path: Path, threads: int | None) -> None:
        ort = _import("onnxruntime")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.intra_op_num_threads = threads or 0  # 0: onnxruntime's default (one per physical core)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]
        self.shapes = [tuple(d if isinstance(d, int) else None for d in i.shape) for i in self.session.get_inputs()]

    def bind(self, inputs: Sequence[torch.Tensor]) -> Callable[[], Any]:
        feeds = {n: _numpy(x) for n, x in zip(self.names, inputs)}
        session = self.session
        return lambda: session.run(None, feeds)

    def output(self, raw: Any) -> torch.Tensor:
        return torch.from_numpy(raw[0])


@functools.lru_cache(maxsize=1)
def _ov_core() -> Any:
    return _import("openvino").Core()


class _OvRunner:
    """OpenVINO CPU plugin: latency hint, one stream, fp32 inference precision (no bf16 down-conversion)."""

    def __init__(self, path: Path, threads: int | None) -> None:
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1, "INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        core = _ov_core()
        model = core.read_model(str(path))
        self.shapes = [tuple(d.get_length() if d.is_static else None for d in i.get_partial_shape())
                       for i in model.inputs]
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()

    def bind(self, inputs: Sequence[torch.Tensor]) -> Callable[[], Any]:
        feeds = {i: _numpy(x) for i, x in enumerate(inputs)}
        request = self.request
        return lambda: request.infer(feeds, share_inputs=True, share_outputs=True)

    def output(self, raw: Any) -> torch.Tensor:
        return torch.from_numpy(np.array(self.request.get_output_tensor(0).data, copy=True))


def _import(module: str) -> Any:
    ok, why = runtime_status(module)
    if not ok:
        raise RuntimeUnavailableError(why)
    return importlib.import_module(module)


def _check_name(runtime: str) -> None:
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}, runtime argument, expected one of {', '.join(RUNTIMES)}")


def _check_threads(threads: int | None) -> None:
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise UsageError(f"threads {threads!r}, threads argument, expected an integer >= 1 or None")


def _file_runner(path: Path, runtime: str, threads: int | None) -> _OrtRunner | _OvRunner:
    return _OrtRunner(path, threads) if runtime == "onnxruntime" else _OvRunner(path, threads)


def compile_module(module: nn.Module, inputs: Sequence[torch.Tensor], runtime: str, threads: int | None = 1,
                   name: str | None = None) -> Session:
    """A session running ``module`` (a network or one of its parts) at the exact shapes of ``inputs``.

    eager: the module as it is (eval mode); cpp: its BN-folded form on the compiled ops (:func:`fuse_module`,
    channels_last activations); onnxruntime / openvino: its BN-folded plain-torch form exported as an ONNX
    graph with static shapes. Used to time latency-table entries on the runtime that will run the network.
    """
    _check_name(runtime)
    _check_threads(threads)
    desc = name or type(module).__name__
    shapes = [tuple(x.shape) for x in inputs]
    if runtime == "eager":
        return Session(runtime, _TorchRunner(_eval(module), threads, False), shapes, threads, desc)
    if runtime == "cpp":
        return Session(runtime, _TorchRunner(fuse_module(module, "cpp"), threads, True), shapes, threads, desc)
    _import(runtime)
    folded = fuse_module(module, "eager")
    with tempfile.TemporaryDirectory(prefix="hwnas-onnx-") as tmp:
        names = [f"input{i}" for i in range(len(inputs))]
        path = export_graph(folded, [x.detach().cpu() for x in inputs], Path(tmp) / "module.onnx",
                            input_names=names, dynamic_batch=False)
        runner = _file_runner(path, runtime, threads)
    return Session(runtime, runner, shapes, threads, desc)


def session(model: nn.Module | str | os.PathLike, runtime: str = "onnxruntime", *,
            input_size: tuple[int, int] = (256, 128), batch: int | None = None, threads: int | None = 1,
            fused: bool | None = None) -> Session:
    """A ready inference session of a trained ReID model: images (N, 3, H, W) -> features (N, D).

    model: a ``ReIDModel`` (``hwnas.create_model``; ``cpp`` needs CNet/CDNet), or the path of an exported
    ``.onnx`` file (onnxruntime, openvino) or OpenVINO ``.xml`` IR (see :func:`load_session`).
    input_size: (H, W) the graph is made for; batch: fixed N, or ``None`` for any; threads: intra-op threads.
    fused: export the BN-folded model to ONNX (default for CNet/CDNet; onnxruntime/openvino only).
    Raises UsageError (bad argument), RuntimeUnavailableError (runtime not installed), ExportError.
    """
    _check_name(runtime)
    _check_threads(threads)
    if isinstance(model, (str, os.PathLike)):
        return load_session(model, runtime, threads=threads)
    if not isinstance(model, ReIDModel):
        raise UsageError(f"a {type(model).__name__}, model argument, expected a ReIDModel from hwnas.create_model "
                         "or the path of an exported .onnx/.xml file")
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int) or batch < 1):
        raise UsageError(f"batch {batch!r}, batch argument, expected an integer >= 1 or None (any batch)")
    h, w = _size(input_size)
    shape: Shape = (batch, 3, h, w)
    desc = f"{model.model_name} on {runtime}"
    if runtime == "eager":
        return Session(runtime, _TorchRunner(_eval(model), threads, False), [shape], threads, desc)
    if runtime == "cpp":
        return Session(runtime, _TorchRunner(fuse(model, "cpp"), threads, False), [shape], threads, desc)
    _import(runtime)
    fold = isinstance(model.backbone, CDNetBackbone) if fused is None else fused
    with tempfile.TemporaryDirectory(prefix="hwnas-onnx-") as tmp:
        path = export_onnx(model, Path(tmp) / "model.onnx", fused=fold, image_size=(h, w), batch=batch)
        runner = _file_runner(path, runtime, threads)
    return Session(runtime, runner, [shape], threads, desc)


def load_session(path: str | os.PathLike, runtime: str = "onnxruntime", *, threads: int | None = 1) -> Session:
    """A session of an exported graph file: ``.onnx`` (onnxruntime or openvino) or OpenVINO IR ``.xml``."""
    _check_name(runtime)
    _check_threads(threads)
    path = Path(path)
    if runtime not in ("onnxruntime", "openvino"):
        raise UsageError(f"runtime {runtime!r} for the file {path}, runtime argument, expected onnxruntime or "
                         "openvino (eager and cpp run a model object)")
    if not path.is_file():
        raise UsageError(f"model file {path} does not exist, model argument, expected an exported .onnx or .xml file")
    if runtime == "onnxruntime" and path.suffix != ".onnx":
        raise UsageError(f"model file {path}, model argument, expected an .onnx file for onnxruntime")
    runner = _file_runner(path, runtime, threads)
    return Session(runtime, runner, runner.shapes, threads, f"{path.name} on {runtime}")


def check_parity(sess: Session, model: nn.Module, images: torch.Tensor, *, atol: float = 1e-4,
                 rtol: float = 1e-3) -> Parity:
    """Features of ``sess`` against the eval-mode PyTorch ``model`` on the same images."""
    got = sess(images)
    with torch.no_grad():
        want = _eval(model)(images)
    return compare(got, want, atol, rtol)


def _eval(model: nn.Module) -> nn.Module:
    """An eval-mode copy when the model is in training mode (the caller's model stays as it was)."""
    return model if not model.training else copy.deepcopy(model).eval()


def _size(input_size: Sequence[int]) -> tuple[int, int]:
    ok = len(tuple(input_size)) == 2 and all(isinstance(v, int) and not isinstance(v, bool) and v >= 16
                                             for v in input_size)
    if not ok:
        raise UsageError(f"input size {tuple(input_size)!r}, input_size argument, expected (height, width) "
                         "integers >= 16")
    return int(input_size[0]), int(input_size[1])
