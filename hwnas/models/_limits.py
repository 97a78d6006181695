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
