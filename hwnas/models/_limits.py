"""The smallest input a model runs at, found by shape inference on the ``meta`` device (no memory, no compute).

Used by every command to refuse ``--input-size`` values that are too small before any work starts, with the
minimum in the message, instead of a deep PyTorch error halfway through a run.
"""
from __future__ import annotations

import functools
import warnings
from typing import Any

import torch

from hwnas._limits import MAX_INPUT_SIDE
from hwnas.errors import UsageError
from hwnas.models._registry import create_model

_LARGE = 256  # the other side while one side is probed; every model runs at 256 x 256


def _runs(name: str, options: tuple[tuple[str, Any], ...], size: tuple[int, int], modes=(False, True)) -> bool:
    model = _meta_model(name, options)
    x = torch.empty(2, 3, *size, device="meta")
    try:
        with torch.no_grad():
            for training in modes:
                model.train(training)(x)
    except (RuntimeError, ValueError, IndexError):
        return False
    return True


@functools.lru_cache(maxsize=32)
def _meta_model(name: str, options: tuple[tuple[str, Any], ...]) -> torch.nn.Module:
    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Initializing zero-element tensors is a no-op"
        return create_model(name, **dict(options))


def _key(options: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    for k, v in options.items():
        try:
            hash(v)
        except TypeError:  # a list or mapping given as an option value (e.g. -o width_mult=[1])
            raise UsageError(f"model option {k}={v!r}, --model-option, expected a number, a string or a "
                             "boolean") from None
    return tuple(sorted((k, v) for k, v in options.items() if k not in ("num_classes",)))


@functools.lru_cache(maxsize=32)
def _min_size(name: str, options: tuple[tuple[str, Any], ...]) -> tuple[int, int]:
    def smallest(fits) -> int:
        lo, hi = 1, _LARGE  # fits(hi) holds; find the smallest fitting side by bisection
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if fits(mid) else (mid + 1, hi)
        return lo

    eval_only = (False,)
    return (smallest(lambda h: _runs(name, options, (h, _LARGE), eval_only)),
            smallest(lambda w: _runs(name, options, (_LARGE, w), eval_only)))


def min_input_size(name: str, **options: Any) -> tuple[int, int]:
    """(height, width) in pixels: the smallest input each side may have for ``create_model(name, **options)``."""
    return _min_size(name, _key(options))


def check_input_size(name: str, size: tuple[int, int], option: str = "--input-size", **options: Any) -> None:
    """Raise :class:`UsageError` naming the minimum when the model cannot run at ``size`` (height, width)."""
    h, w = size
    if max(h, w) > MAX_INPUT_SIDE:
        raise UsageError(f"input size {h}x{w} is too large, {option}, expected at most {MAX_INPUT_SIDE} pixels per "
                         "side (height x width)")
    if _runs(name, _key(options), (h, w)):
        return
    mh, mw = min_input_size(name, **options)
    raise UsageError(f"input size {h}x{w} is too small for {name}, {option}, expected at least {mh}x{mw} "
                     "(height x width in pixels)")


def training_activation_bytes(name: str, size: tuple[int, int], batch_size: int, **options: Any) -> int:
    """A lower bound of the memory (bytes, fp32) one training step keeps for backward: the outputs of every
    convolution in a train-mode forward of ``batch_size`` images of ``size`` (H, W), counted on the meta device (no
    memory is used). Each is saved for backward at least once (as the next layer's input); BatchNorm and ReLU save
    more, and gradients, parameters and the optimiser's state come on top."""
    model = _meta_model(name, _key(options))
    total = 0

    def count(_module: torch.nn.Module, _inputs: Any, output: Any) -> None:
        nonlocal total
        for t in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(t, torch.Tensor):
                total += t.numel()

    leaves = [m for m in model.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            model.train(True)(torch.empty(2, 3, *size, device="meta"))  # 2: BatchNorm1d trains on > 1 sample
    finally:
        for h in handles:
            h.remove()
    return total // 2 * 4 * batch_size


def available_memory_bytes(device: torch.device) -> int | None:
    """Free memory of ``device`` in bytes: ``torch.cuda.mem_get_info`` on CUDA, ``MemAvailable`` of /proc/meminfo
    on a Linux CPU; None where it cannot be read."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_training_memory(name: str, size: tuple[int, int], batch_size: int, device: torch.device,
                          **options: Any) -> None:
    """Raise :class:`UsageError` when even the activations of one training step (:func:`training_activation_bytes`)
    exceed the memory available on ``device``, before any work (rather than an out-of-memory kill later)."""
    need = training_activation_bytes(name, size, batch_size, **options)
    free = available_memory_bytes(device)
    if free is not None and need > free:
        gib = 1024 ** 3
        raise UsageError(f"input size {size[0]}x{size[1]} at batch {batch_size} needs at least {need / gib:.1f} GiB "
                         f"for activations, --input-size / --batch-size, expected at most the {free / gib:.1f} GiB "
                         f"available on {device}")
