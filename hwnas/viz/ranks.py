"""Ranked results as a picture grid: per query, its top-k gallery images bordered green (same identity) or red.

The figure torchreid draws with ``visrank`` and fast-reid with ``visualize_result``, ranked exactly as
:mod:`hwnas.evaluation.rank` scores (Market-1501 protocol, DESIGN section 3): gallery images of the query's
identity taken by the query's camera, and junk boxes (pid -1), are excluded; distractors (pid 0) stay.
Queries are taken evenly spaced over those that have a true match, so the same settings always show the same
queries. Each row: the query (dark border; its AP below), then gallery ranks 1..k with their distances.
"""
from __future__ import annotations

import math
import os
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hwnas.errors import UsageError
from hwnas.evaluation.rank import evaluate_rank, rank_gallery
from hwnas.viz._figure import (
    MATCH_RGB,
    MATCH_TEXT_RGB,
    MISMATCH_RGB,
    MISMATCH_TEXT_RGB,
    QUERY_RGB,
    hex_color,
    new_figure,
    save,
)

Item = tuple[str, int, int]  # (image path, pid, camid)

PROTOCOL_NOTE = ("Market-1501 protocol: gallery images of the query's identity from the query's camera, and junk "
                 "boxes (pid -1), are excluded from the ranking; distractors stay.")
LEGEND = "Green border: same identity as the query. Red border: another identity."
PER_PAGE = 10

# pixel layout (1 px = 1/DPI inch)
_BORDER, _GAP, _SEP, _LABEL_H, _ROW_GAP, _MARGIN, _MIN_WIDTH = 4, 6, 24, 40, 10, 12, 520


@dataclass(frozen=True)
class RankedImage:
    """One gallery image at ``rank`` (1-based) with its distance to the query; ``match``: same identity."""

    rank: int
    path: str
    pid: int
    camid: int
    distance: float
    match: bool


@dataclass(frozen=True)
class RankedQuery:
    """A query (position ``index`` in the query list), its average precision and its top-k gallery images."""

    index: int
    path: str
    pid: int
    camid: int
    ap: float
    gallery: tuple[RankedImage, ...]


def _ids(items: Sequence[Item]) -> tuple[np.ndarray, np.ndarray]:
    return (np.fromiter((int(p) for _, p, _ in items), np.int64, len(items)),
            np.fromiter((int(c) for _, _, c in items), np.int64, len(items)))


def select_queries(distmat: torch.Tensor | np.ndarray, query: Sequence[Item], gallery: Sequence[Item],
                   num: int) -> list[int]:
    """Indices of ``num`` queries evenly spaced over those with a true match (same pid, another camera)."""
    qp, qc = _ids(query)
    gp, gc = _ids(gallery)
    valid = [i for i in range(len(query)) if np.any((gp == qp[i]) & (gc != qc[i]))]
    if num <= 0 or not valid:
        return []
    if num >= len(valid):
        return valid
    return [valid[round(float(j))] for j in np.linspace(0, len(valid) - 1, num)]


def rank_queries(distmat: torch.Tensor | np.ndarray, query: Sequence[Item], gallery: Sequence[Item],
                 indices: Sequence[int], topk: int) -> list[RankedQuery]:
    """The top-``topk`` gallery images of each query in ``indices``, ordered as scored (the ranking rule of
    :mod:`hwnas.evaluation.rank`: own precision, ties by gallery order, NaN / infinite distances last)."""
    dist = distmat.detach().cpu().numpy() if isinstance(distmat, torch.Tensor) else np.asarray(distmat)
    if dist.shape != (len(query), len(gallery)):
        raise UsageError(f"distance matrix of shape {dist.shape}, ranked-results figure, expected "
                         f"({len(query)}, {len(gallery)}) (queries x gallery)")
    qp, qc = _ids(query)
    gp, gc = _ids(gallery)
    rows = []
    for i in indices:
        keep = ~((gp == qp[i]) & (gc == qc[i])) & (gp != -1)
        order = rank_gallery(dist[i])
        order = order[keep[order]][:topk]
        ap = evaluate_rank(dist[i:i + 1], qp[i:i + 1], gp, qc[i:i + 1], gc, max_rank=1, num_threads=1)["mAP"]
        gallery_row = tuple(RankedImage(r + 1, str(gallery[j][0]), int(gp[j]), int(gc[j]), float(dist[i, j]),
                                        bool(gp[j] == qp[i])) for r, j in enumerate(order))
        rows.append(RankedQuery(int(i), str(query[i][0]), int(qp[i]), int(qc[i]), float(ap), gallery_row))
    return rows


def _bordered(path: str, size: tuple[int, int], rgb: tuple[int, int, int]) -> np.ndarray:
    """The image resized to ``size`` (H, W) in a ``_BORDER``-pixel frame of colour ``rgb``: uint8 (H+2b, W+2b, 3)."""
    from PIL import Image

    from hwnas.data.loaders import read_image

    h, w = size
    img = np.asarray(read_image(path).resize((w, h), Image.BILINEAR), dtype=np.uint8)
    out = np.empty((h + 2 * _BORDER, w + 2 * _BORDER, 3), np.uint8)
    out[:] = rgb
    out[_BORDER:_BORDER + h, _BORDER:_BORDER + w] = img
    return out


def plot_ranked_results(rows: Sequence[RankedQuery], path: str | os.PathLike, *, title: str = "", subtitle: str = "",
                        cell_size: tuple[int, int] = (128, 64)) -> Path:
    """Draw ``rows`` (one per query) into a PNG at ``path``; images are shown at ``cell_size`` (H, W) pixels.

    Images are placed pixel for pixel (``figimage``, no resampling), so the borders keep their exact colours.
    """
    if not rows:
        raise UsageError("no query to draw, plot_ranked_results, expected at least one query with a true match")
    h, w = cell_size
    cw, ch = w + 2 * _BORDER, h + 2 * _BORDER
    topk = max(len(r.gallery) for r in rows)
    width = max(_MIN_WIDTH, 2 * _MARGIN + cw + _SEP + topk * cw + max(topk - 1, 0) * _GAP)
    chars = max(40, int((width - 2 * _MARGIN) / 7.4))  # 9 pt DejaVu Sans averages under 7.4 px a character
    header = [line for text in (title, subtitle, PROTOCOL_NOTE, LEGEND) if text for line in textwrap.wrap(text, chars)]
    bold = len(textwrap.wrap(title, chars)) if title else 0
    header_h = 14 * len(header) + 2 * _MARGIN
    row_h = ch + _LABEL_H + _ROW_GAP
    height = header_h + len(rows) * row_h + _MARGIN
    fig = new_figure(width / 100, height / 100)

    def text(x: float, y: float, s: str, **kw) -> None:  # x, y in pixels from the top-left corner
        fig.text(x / width, 1 - y / height, s, **kw)

    for n, line in enumerate(header):
        text(_MARGIN, _MARGIN + 14 * n, line, fontsize=9, va="top", ha="left",
             weight="bold" if n < bold else "normal")
    for r, row in enumerate(rows):
        top = header_h + r * row_h
        fig.figimage(_bordered(row.path, cell_size, QUERY_RGB), xo=_MARGIN, yo=height - top - ch, origin="upper")
        label_y = top + ch + 3
        cx = _MARGIN + cw / 2
        for n, s in enumerate((f"query {row.index}", f"id {row.pid} c{row.camid}", f"AP {row.ap:.2f}")):
            text(cx, label_y + 12 * n, s, fontsize=7.5, ha="center", va="top")
        for g in row.gallery:
            x0 = _MARGIN + cw + _SEP + (g.rank - 1) * (cw + _GAP)
            rgb, text_rgb = (MATCH_RGB, MATCH_TEXT_RGB) if g.match else (MISMATCH_RGB, MISMATCH_TEXT_RGB)
            fig.figimage(_bordered(g.path, cell_size, rgb), xo=x0, yo=height - top - ch, origin="upper")
            mark = "\u2713" if g.match else "\u2717"
            who = f"distractor c{g.camid}" if g.pid == 0 else f"id {g.pid} c{g.camid}"
            for n, s in enumerate((f"{g.rank}. {mark} {g.distance:.3g}", who)):
                text(x0 + cw / 2, label_y + 12 * n, s, fontsize=7.5, ha="center", va="top",
                     color=hex_color(text_rgb))
    return save(fig, path)


def page_paths(out_dir: Path, stem: str, pages: int) -> list[Path]:
    """``<stem>-ranks-01.png``, ``-02``, ... in ``out_dir``."""
    return [out_dir / f"{stem}-ranks-{p:02d}.png" for p in range(1, pages + 1)]


def write_ranked_results(distmat: torch.Tensor | np.ndarray, query: Sequence[Item], gallery: Sequence[Item],
                         out_dir: str | os.PathLike, stem: str, num_queries: int, topk: int = 10, title: str = "",
                         cell_size: tuple[int, int] = (128, 64), per_page: int = PER_PAGE) -> list[Path]:
    """Ranked results of ``num_queries`` queries, ``per_page`` rows per PNG (``<stem>-ranks-NN.png``).

    Pages of an earlier call with the same ``stem`` beyond the new count are removed, so the folder never mixes
    two runs. Returns the written paths (empty when no query has a true match).
    """
    out = Path(out_dir)
    indices = select_queries(distmat, query, gallery, num_queries)
    rows = rank_queries(distmat, query, gallery, indices, topk)
    pages = math.ceil(len(rows) / per_page)
    paths = page_paths(out, stem, pages)
    for p, path in enumerate(paths):
        chunk = rows[p * per_page:(p + 1) * per_page]
        shown = (f"queries {p * per_page + 1}-{p * per_page + len(chunk)} of {len(rows)} shown, evenly spaced over "
                 f"the queries with a true match; top-{topk} gallery images each")
        plot_ranked_results(chunk, path, title=title, subtitle=shown, cell_size=cell_size)
    pattern = re.compile(rf"^{re.escape(stem)}-ranks-(\d+)\.png$")
    for old in out.glob(f"{stem}-ranks-*.png"):
        m = pattern.match(old.name)
        if m and int(m.group(1)) > pages:
            old.unlink()
    return paths
