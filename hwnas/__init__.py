"""hwnas: hardware-aware architecture search for person re-identification (CNet/CDNet and beyond).

The names below are imported on first use (PEP 562), so importing one part of hwnas (``hwnas.ops``, say)
does not import the others: ``hwnas.ops`` stays free of the model classes that use it.
"""
from __future__ import annotations

import importlib
from typing import Any

from hwnas._version import __version__

_EXPORTS = {
    "Genotype": "hwnas.space",
    "ReIDModel": "hwnas.models",
    "ReIDOutput": "hwnas.models",
    "create_model": "hwnas.models",
    "list_models": "hwnas.models",
    "load_genotype": "hwnas.space",
}

__all__ = ["Genotype", "ReIDModel", "ReIDOutput", "__version__", "create_model", "list_models", "load_genotype"]


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
