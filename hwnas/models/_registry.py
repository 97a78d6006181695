"""Model registry in the style of timm: ``@register_model`` factories, ``create_model``, ``list_models``."""
from __future__ import annotations

import fnmatch
import inspect
from typing import Callable

from torch import nn

from hwnas.errors import UsageError

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a factory under its function name."""
    if fn.__name__ in _MODELS:
        raise UsageError(f"model {fn.__name__!r} is registered twice, register_model, expected a new name")
    _MODELS[fn.__name__] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def model_options(name: str) -> dict[str, object]:
    """The keyword options a model accepts, with their defaults."""
    return {
        p.name: p.default for p in inspect.signature(_get(name)).parameters.values() if p.kind == p.KEYWORD_ONLY
    }


def _get(name: str) -> Callable[..., nn.Module]:
    if name not in _MODELS:
        raise UsageError(f"unknown model {name!r}, model name, expected one of {', '.join(list_models())}")
    return _MODELS[name]


def create_model(name: str, **options: object) -> nn.Module:
    """Build a registered model; options are the factory's keyword arguments (no weights are downloaded)."""
    factory = _get(name)
    allowed = model_options(name)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise UsageError(f"unknown option(s) {', '.join(unknown)} for model {name!r}, model options, expected "
                         f"{', '.join(allowed)}")
    return factory(**options)
