"""hwnas: hardware-aware architecture search for person re-identification (CNet/CDNet and beyond).

The names below are imported on first use (PEP 562), so importing one part of hwnas (``hwnas.ops``, say)
does not import the others: ``hwnas.ops`` stays free of the model classes that use it.
"""
from __future__ import annotations

import importlib
from typing import Any

from hwnas._startup import install_quiet_interrupt
from hwnas._version import __version__

install_quiet_interrupt()  # a Ctrl-C while a command still imports torch: "interrupted", exit 130, no traceback

_EXPORTS = {
    "Genotype": "hwnas.space",
    "ReIDModel": "hwnas.models",
    "ReIDOutput": "hwnas.models",
    "create_model": "hwnas.models",
    "list_models": "hwnas.models",
    "load_genotype": "hwnas.space",
}

__all__ = ["Genotype", "ReIDModel", "ReIDOutput", "__version__", "create_model", "list_models", "load_checkpoint_model",
           "load_genotype"]


def load_checkpoint_model(path, device="cpu"):  # noqa: ANN001, ANN201 (see hwnas.training.load_checkpoint_model)
    """The model of a training checkpoint (``runs/x/last.pt``) in eval mode: ``model(images) -> (N, D)`` features.

    See :func:`hwnas.training.checkpoint.load_checkpoint_model` (imported on first use, to keep ``import hwnas``
    light).
    """
    from hwnas.training.checkpoint import load_checkpoint_model as load

    return load(path, device)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:  # a subpackage (``import hwnas; hwnas.models...``), as when hwnas imported them all eagerly
        try:
            value = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
