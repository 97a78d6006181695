"""The latency API the search uses: a loaded table as tensors, expected latency under alpha, genotype latency."""
from __future__ import annotations

import os

import torch

from hwnas.latency.io import read_table
from hwnas.latency.schema import LatencyTableError, TableData, expected_layer_keys
from hwnas.space.candidates import NUM_SEARCHABLE_LAYERS, SPACES, candidates
from hwnas.space.genotype import Genotype


class LatencyTable:
    """A validated table with per-space latency matrices ``(6, n_candidates)`` in milliseconds.

    ``expected_latency_ms(softmax(alpha), space)`` is ``fixed_ms + sum_{l,i} p[l, i] * LUT[l][i]``
    (DESIGN section 2), differentiable in ``p``; ``genotype_latency_ms`` is the same sum for one-hot ``p``.
    A table with a composition (``scale * raw sum + offset_ms``, see :mod:`hwnas.latency.composition`)
    folds it in: ``LUT = scale * measured entries``, ``fixed_ms = scale * (stem + downsamples + head) +
    offset_ms``; ``raw_fixed_ms`` and ``raw_matrix`` are the measured values.
    """

    def __init__(self, data: TableData) -> None:
        self.data = data
        comp = data.composition
        self.raw_fixed_ms: float = float(sum(e.latency_ms for e in data.fixed))
        self.fixed_ms: float = comp.apply(self.raw_fixed_ms)
        by_key = {e.key: e.latency_ms * comp.scale for e in data.layers}
        self._matrices: dict[str, torch.Tensor] = {}
        self._cast: dict[tuple[str, torch.device, torch.dtype], torch.Tensor] = {}
        for space in data.spaces:
            keys = expected_layer_keys(data.setting, space)
            n = len(candidates(space))
            values = [by_key[k] for k in keys]
            self._matrices[space] = torch.tensor(values, dtype=torch.float64).reshape(NUM_SEARCHABLE_LAYERS, n)

    @property
    def name(self) -> str:
        return self.data.name

    @property
    def spaces(self) -> tuple[str, ...]:
        return self.data.spaces

    @property
    def runtime(self) -> str:
        """The runtime the entries were timed on (``eager``, ``cpp``, ``onnxruntime``, ``openvino``)."""
        return self.data.provenance.runtime

    def raw_matrix(self, space: str) -> torch.Tensor:
        """The measured candidate latencies (ms) before the composition's scale, shape (6, n_candidates)."""
        return self.matrix(space) / self.data.composition.scale

    def raw_genotype_latency_ms(self, genotype: Genotype) -> float:
        """Plain sum of the measured entries of one architecture (fixed parts + six layers), ms."""
        raw = self.raw_matrix(genotype.space)
        return self.raw_fixed_ms + float(sum(raw[l, i] for l, i in enumerate(genotype.indices())))

    def require(self, space: str | None = None, resolution: tuple[int, int] | None = None,
                width_mult: float | None = None) -> LatencyTable:
        """Refuse (with a clear message) a table that does not cover the space/resolution/width asked for."""
        s = self.data.setting
        where = f"latency table '{self.name}' ({self.data.device.name}, {s.resolution[0]}x{s.resolution[1]}, " \
                f"width {s.width_mult}, batch {s.batch_size}, {s.dtype})"
        if space is not None and space not in SPACES:
            raise LatencyTableError(f"unknown search space {space!r}, {where}, expected one of {', '.join(SPACES)}")
        if space is not None and space not in self.spaces:
            raise LatencyTableError(f"no entries for space '{space}' (it covers: {', '.join(self.spaces) or 'none'}), "
                                    f"{where}, expected a table built for that space")
        if resolution is not None and tuple(resolution) != tuple(s.resolution):
            raise LatencyTableError(f"input size {resolution[0]}x{resolution[1]}, {where}, expected the table's "
                                    f"{s.resolution[0]}x{s.resolution[1]} (build or predict a table for that size)")
        if width_mult is not None and float(width_mult) != s.width_mult:
            raise LatencyTableError(f"width {width_mult}, {where}, expected the table's width {s.width_mult}")
        return self

    def matrix(self, space: str) -> torch.Tensor:
        """Per-layer candidate latencies (ms), float64 tensor of shape (6, n_candidates(space))."""
        self.require(space)
        return self._matrices[space]

    def expected_latency_ms(self, probs: torch.Tensor, space: str) -> torch.Tensor:
        """Expected latency (ms, 0-dim tensor) of the supernet; ``probs`` is (6, n_candidates) = softmax(alpha)."""
        lut = self.matrix(space)
        if probs.shape != lut.shape:
            raise LatencyTableError(f"probs of shape {tuple(probs.shape)}, latency table '{self.name}', expected "
                                    f"{tuple(lut.shape)} (6 layers x {lut.shape[1]} {space} candidates)")
        key = (space, probs.device, probs.dtype)
        if key not in self._cast:  # called every search step: keep one copy per device/dtype
            self._cast[key] = lut.to(device=probs.device, dtype=probs.dtype)
        return (probs * self._cast[key]).sum() + self.fixed_ms

    def uniform_latency_ms(self, space: str) -> float:
        """Expected latency (ms) of the supernet at uniform alphas (every candidate equally likely)."""
        layers, n = self.matrix(space).shape
        return float(self.expected_latency_ms(torch.full((layers, n), 1.0 / n, dtype=torch.float64), space))

    def weight_for_pressure(self, space: str, pressure: float) -> float:
        """The latency weight (per ms, 4 significant digits) that makes ``weight * E[lat]`` worth ``pressure`` at
        uniform alphas; 0 for pressure 0. The search's default uses pressure 4 (hwnas.search.run_config)."""
        if pressure == 0:
            return 0.0
        return float(f"{pressure / self.uniform_latency_ms(space):.4g}")

    def layer_latency_ms(self, space: str, layer: int, index: int) -> float:
        return float(self.matrix(space)[layer, index])

    def genotype_latency_ms(self, genotype: Genotype) -> float:
        """Table latency (ms) of one architecture: fixed parts plus its six chosen candidates."""
        lut = self.matrix(genotype.space)
        return self.fixed_ms + float(sum(lut[l, i] for l, i in enumerate(genotype.indices())))

    def __repr__(self) -> str:
        s = self.data.setting
        return (f"LatencyTable({self.name!r}, device={self.data.device.name!r}, {self.data.provenance.kind} "
                f"on {self.runtime}, "
                f"batch={s.batch_size}, {s.dtype}, {s.resolution[0]}x{s.resolution[1]}, spaces={self.spaces})")


def load_table(name_or_path: str | os.PathLike | LatencyTable, space: str | None = None) -> LatencyTable:
    """A shipped table name (e.g. ``rtx2080``) or a JSON path -> :class:`LatencyTable` (checked for ``space``)."""
    table = name_or_path if isinstance(name_or_path, LatencyTable) else LatencyTable(read_table(name_or_path))
    return table.require(space)
