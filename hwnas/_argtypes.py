"""Value types of hwnas's command lines (argparse ``type=``) and the helpers that echo a value in an error message.

Each type raises ``argparse.ArgumentTypeError("bad value <value>, expected <what>")``, which
:class:`hwnas._cli.ArgumentParser` reports as ``error: <what>, <option>, expected <what>`` with exit status 2.
Integers are plain ASCII digits, floats finite, sizes and widths within :mod:`hwnas._limits`. The names are
re-exported by :mod:`hwnas._cli`, through which the tools use them.
"""
from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hwnas._limits import MAX_INPUT_SIDE, MAX_WIDTH_MULT, MAX_WORKERS


def printable(text: str) -> str:
    """``text`` with every character that is not printable (NUL, newline, tab, escape, other control and format
    characters) written as Python escapes (``\\x00``, ``\\n``, ``\\u202e``): an error message stays one printable
    line whatever a value, file name or path holds."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def clip(text: str, limit: int = 60) -> str:
    """``text`` for an error message: a 5,000-character value is not echoed whole, and control characters are
    escaped (:func:`printable`). For a quoted echo use :func:`quote` (``repr`` escapes by itself)."""
    return printable(text if len(text) <= limit else text[:limit] + "...")


def echo(value: Any, limit: int = 60) -> str:
    """Any value for an error message: a string clipped (:func:`clip`), anything else its clipped ``repr``."""
    return clip(value if isinstance(value, str) else repr(value), limit)


def file_value(value: Any, limit: int = 60) -> str:
    """A value read from a file (JSON, YAML, a checkpoint), for an error message: its ``repr`` clipped, so the
    string ``'1'`` shows quoted and is told apart from the number ``1`` (:func:`echo` shows strings bare)."""
    return quote(value, limit) if isinstance(value, str) else clip(repr(value), limit)


def quote(text: str, limit: int = 60) -> str:
    """``text`` clipped like :func:`clip` and quoted like ``repr`` (which escapes control characters once)."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def same_value(a: Any, b: Any) -> bool:
    """Whether two option values given for one key agree: ``a == b``, except that a boolean never equals a number
    (``True == 1`` in Python, not for a setting). A key repeated with different values is refused, never
    last-wins."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _bad(text: str, expected: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(f"bad value {quote(text)}, expected {expected}")


_INTEGER = re.compile(r"[+-]?[0-9]+")


def _integer(text: str) -> int | None:
    """``text`` as an integer when it is plain ASCII decimal digits with an optional sign, else None. Python's
    ``int()`` also takes ``' 2'``, ``'1_000'`` and non-ASCII digits (``'٣'``); a command line should not."""
    return int(text) if len(text) <= 40 and _INTEGER.fullmatch(text) else None  # (int() refuses > 4300 digits)


INT_MAX = 2**31 - 1  # no count, size or epoch of this project is larger; bigger values overflow C ints deep inside


def int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """argparse type: an integer >= ``minimum`` and <= ``maximum`` (default :data:`INT_MAX`), ASCII digits only."""
    top = INT_MAX if maximum is None else maximum

    def parse(text: str) -> int:
        value = _integer(text)
        if value is None or value < minimum:
            raise _bad(text, f"an integer >= {minimum}" if maximum is None
                       else f"an integer between {minimum} and {maximum}")
        if value > top:
            raise _bad(text, f"an integer between {minimum} and {top}")
        return value

    parse.__name__ = f"int_at_least_{minimum}"
    return parse


positive_int = int_at_least(1)
nonnegative_int = int_at_least(0)
num_workers = int_at_least(0, MAX_WORKERS)  # DataLoader worker processes


MAX_THREADS = 4096  # torch.set_num_threads takes a C int; no CPU has more cores than this
SEED_MAX = INT_MAX  # the one seed bound: flags, config files and overrides (which refuse any integer > INT_MAX)
# and the config classes; numpy, torch and Python's random all take it, and seed + rank or + epoch stays < 2**32


def seed(text: str) -> int:
    """argparse type: a random seed, an integer in 0..SEED_MAX = 2**31-1 (the bound config files have too)."""
    value = _integer(text)
    if value is None or not 0 <= value <= SEED_MAX:
        raise _bad(text, f"an integer between 0 and {SEED_MAX}")
    return value


def seed_list(limit: int) -> Callable[[str], tuple[int, ...]]:
    """argparse type: 1..``limit`` distinct seeds separated by commas (``0,1,2``), each as :func:`seed` takes it."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            seeds = tuple(seed(part) for part in text.split(","))
        except argparse.ArgumentTypeError:
            seeds = ()
        if not seeds or len(set(seeds)) != len(seeds) or len(seeds) > limit:
            raise _bad(text, f"1 to {limit} distinct seeds (integers 0..{SEED_MAX}) separated by commas, like 0,1,2")
        return seeds
    return parse


PLAIN_NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")  # also hwnas._config's


def finite_float(text: str) -> float:
    """argparse type: a finite number (no nan/inf), in plain ASCII notation (``0.1``, ``1e-3``; Python's
    ``float()`` also takes ``' 2'``, ``'1_0'`` and other scripts' digits)."""
    if not PLAIN_NUMBER.fullmatch(text):
        raise _bad(text, "a finite number")
    value = float(text)
    if not math.isfinite(value):
        raise _bad(text, "a finite number")
    return value


def nonnegative_float(text: str) -> float:
    """argparse type: a finite number >= 0."""
    value = finite_float(text)
    if value < 0:
        raise _bad(text, "a finite number >= 0")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    value = finite_float(text)
    if not value > 0:
        raise _bad(text, "a finite number > 0")
    return value


def width_mult(text: str) -> float:
    """argparse type: a width multiplier beta, a finite number in (0, MAX_WIDTH_MULT]. The smallest beta a model
    can be built with depends on the model and is checked when it is built."""
    value = finite_float(text)
    if not 0 < value <= MAX_WIDTH_MULT:
        raise _bad(text, f"a width multiplier > 0 and at most {MAX_WIDTH_MULT:g}")
    return value


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    value = finite_float(text)
    if not 0 <= value <= 1:
        raise _bad(text, "a number between 0 and 1")
    return value


def input_size(text: str) -> tuple[int, int]:
    """argparse type: ``HxW`` in pixels (``256x128``), both >= 1. Per-model minimums are checked by the tool."""
    parts = [_integer(v) for v in text.lower().replace(" ", "").split("x")]
    if len(parts) != 2 or None in parts:
        raise _bad(text, "HEIGHTxWIDTH in pixels like 256x128")
    h, w = parts
    if h < 1 or w < 1:
        raise _bad(text, "HEIGHTxWIDTH with both >= 1")
    if max(h, w) > MAX_INPUT_SIDE:
        raise _bad(text, f"HEIGHTxWIDTH with both at most {MAX_INPUT_SIDE} pixels")
    return h, w


def path(text: str) -> Path:
    """argparse type: a non-empty path (``Path('')`` would silently mean the current folder).

    A path with ``..`` is resolved as the operating system does (``os.path.realpath``: ``LINK/..`` is the link
    target's parent), so every later use of it - ``mkdir``, logging, temp files, which would otherwise tidy the
    ``..`` away lexically and write somewhere else - names the same folder."""
    if not text.strip():
        raise _bad(text, "a file or folder path (use . for the current folder)")
    if ".." in Path(text).parts:
        return Path(os.path.realpath(text))
    return Path(text)


def table_ref(text: str) -> str:
    """argparse type: a latency table name or JSON path, not empty (``''`` silently meant "no table")."""
    if not text.strip():
        raise _bad(text, "a latency table name (e.g. rtx2080) or a table JSON path")
    return text


def format_size(size: Sequence[int]) -> str:
    return f"{size[0]}x{size[1]}"
