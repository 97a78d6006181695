"""Backend registry and selection for :mod:`hwnas.ops`."""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Callable, Iterator

from hwnas.errors import RuntimeUnavailableError, UsageError

OpTable = dict[str, Callable]


@dataclass
class Backend:
    """A named set of op implementations; ``available()`` says whether it can run here (and why not)."""

    name: str
    ops: OpTable = field(default_factory=dict)
    available: Callable[[], tuple[bool, str]] = lambda: (True, "")
    priority: int = 0  # higher wins under "auto"


_BACKENDS: dict[str, Backend] = {}
_state = threading.local()
_DEFAULT = "eager"


def register_backend(backend: Backend) -> None:
    _BACKENDS[backend.name] = backend


def available_backends() -> dict[str, tuple[bool, str]]:
    """Every registered backend with (available, reason-if-not)."""
    return {name: b.available() for name, b in _BACKENDS.items()}


def _resolve(name: str) -> str:
    if name == "auto":
        usable = [b for b in _BACKENDS.values() if b.available()[0]]
        return max(usable, key=lambda b: b.priority).name
    if name not in _BACKENDS:
        raise UsageError(f"unknown ops backend {name!r}, ops backend, expected 'auto' or one of "
                         f"{', '.join(sorted(_BACKENDS))}")
    ok, why = _BACKENDS[name].available()
    if not ok:
        raise RuntimeUnavailableError(f"ops backend {name!r} is not available here ({why}), ops backend, expected "
                                      "'eager', 'auto' or an available backend ('python -m hwnas.ops info')")
    return name


def get_backend() -> str:
    return getattr(_state, "name", _DEFAULT)


def set_backend(name: str) -> str:
    """Select the backend for this thread; returns the resolved name (``auto`` picks the best available)."""
    resolved = _resolve(name)
    _state.name = resolved
    return resolved


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    previous = get_backend()
    resolved = set_backend(name)
    try:
        yield resolved
    finally:
        _state.name = previous


def lookup(op: str) -> Callable:
    """The implementation of ``op`` for the current backend, falling back to eager."""
    table = _BACKENDS[get_backend()].ops
    return table.get(op) or _BACKENDS["eager"].ops[op]
