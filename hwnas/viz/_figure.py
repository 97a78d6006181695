"""Shared plumbing of the figures: a pyplot-free matplotlib ``Figure`` (no global backend or figure registry is
touched, so drawing is safe inside a notebook or a training process) saved as PNG atomically."""
from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from hwnas._io import save_figure_atomic

DPI = 100
# Ranked results: a gallery image of the query's identity / of another identity (sRGB, 0-255), and the query.
MATCH_RGB = (0, 170, 0)
MISMATCH_RGB = (215, 0, 0)
QUERY_RGB = (40, 40, 40)
# their labels: darker, so no label pixel ever has a border's exact colour (tests count border pixels)
MATCH_TEXT_RGB = (0, 110, 0)
MISMATCH_TEXT_RGB = (160, 0, 0)


def new_figure(width_in: float, height_in: float, dpi: int = DPI) -> Figure:
    """A white figure of ``width_in`` x ``height_in`` inches at ``dpi`` pixels per inch."""
    return Figure(figsize=(width_in, height_in), dpi=dpi, facecolor="white")


def save(fig: Figure, path: str | os.PathLike, dpi: int = DPI) -> Path:
    """Write ``fig`` to ``path`` (PNG) atomically at ``dpi``; returns the path."""
    return save_figure_atomic(fig, path, dpi=dpi, facecolor="white")


def hex_color(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)
