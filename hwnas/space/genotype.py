"""Genotypes: one candidate per searchable layer, with a string form and JSON files that round-trip.

Our JSON: ``{"space": "cdnet", "layers": [[3, 5, 1], ...]}`` (optionally ``"alphas"``). The original
code's format ``{"layers": [[k1, k2(, r)], ...], "alphas1": [[...], ...]}`` is read too: the space is
taken from the entry length (2 -> cnet, 3 -> cdnet).
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

from hwnas._io import json_error_text, read_regular, write_json_atomic
from hwnas.errors import GenotypeError  # noqa: F401 (re-exported)
from hwnas.space.candidates import (
    KERNEL_SIZES,
    NUM_SEARCHABLE_LAYERS,
    REPEATS,
    SPACES,
    Candidate,
    candidates,
)


@dataclass(frozen=True)
class Genotype:
    """A CNet or CDNet architecture: ``space`` and one :class:`Candidate` per searchable layer."""

    space: str
    layers: tuple[Candidate, ...]
    alphas: tuple[tuple[float, ...], ...] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        _check(self.space, [c.to_list("cdnet") for c in self.layers], where="genotype")
        if self.alphas is not None:
            _check_alphas(self.alphas, "genotype alphas")

    @property
    def depth(self) -> int:
        """Number of CBlocks (the seed's Table 1 "Depth" row)."""
        return sum(c.r for c in self.layers)

    def indices(self) -> list[int]:
        """Position of each layer's candidate in the space's candidate list."""
        table = candidates(self.space)
        return [table.index(c) for c in self.layers]

    @classmethod
    def from_indices(cls, space: str, indices: Sequence[int]) -> "Genotype":
        table = candidates(space)
        return cls(space, tuple(table[i] for i in indices))

    def tostr(self) -> str:
        """``cdnet:3-5-1,3-7-2,...`` (``cnet:5-7,7-9,...``); inverse of :meth:`fromstr`."""
        return f"{self.space}:" + ",".join(c.tostr(self.space) for c in self.layers)

    __str__ = tostr

    @classmethod
    def fromstr(cls, text: str) -> "Genotype":
        space, sep, body = text.partition(":")
        if not sep or space not in SPACES:
            raise GenotypeError(f"bad genotype string {text!r}, genotype, expected '<cnet|cdnet>:k1-k2[-r],...' "
                                "(e.g. cdnet:3-5-1,3-7-2,5-7-2,5-9-1,5-7-2,5-7-1)")
        try:
            entries = [[int(v) for v in item.split("-")] for item in body.split(",")]
        except ValueError:
            raise GenotypeError(f"non-integer entry in genotype string {text!r}, genotype, expected entries like "
                                "3-5 (cnet) or 3-5-1 (cdnet)") from None
        return from_layers(space, entries, where=f"genotype string {text!r}")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"space": self.space, "layers": [c.to_list(self.space) for c in self.layers]}
        if self.alphas is not None:
            d["alphas"] = [list(a) for a in self.alphas]
        return d

    def save(self, path: Union[str, os.PathLike]) -> Path:
        """Write JSON atomically (temp file + rename)."""
        return write_json_atomic(path, self.to_dict())


def _check(space: str, entries: Sequence[Sequence[int]], where: str) -> None:
    if space not in SPACES:
        raise GenotypeError(f"unknown space {space!r}, {where}, expected one of {', '.join(SPACES)}")
    if len(entries) != NUM_SEARCHABLE_LAYERS:
        raise GenotypeError(f"genotype has {len(entries)} layers, {where}, expected {NUM_SEARCHABLE_LAYERS}")
    for i, entry in enumerate(entries, start=1):
        k1, k2, r = entry
        for k in (k1, k2):
            if k not in KERNEL_SIZES:
                raise GenotypeError(f"layer {i} has kernel size {k}, {where}, expected one of "
                                    f"{', '.join(map(str, KERNEL_SIZES))}")
        if r not in REPEATS:
            raise GenotypeError(f"layer {i} has r={r}, {where}, expected r in {{1, 2}}")
        if space == "cnet" and r != 1:
            raise GenotypeError(f"layer {i} has r={r}, {where}, expected r=1 (CNet layers have no repeat)")
        if Candidate(k1, k2, r) not in candidates(space):
            raise GenotypeError(f"layer {i} ({k1},{k2}) is not a candidate of {space}, {where}, expected two "
                                f"different kernel sizes from {KERNEL_SIZES} in increasing order")


def from_layers(space: str, entries: Sequence[Sequence[Any]], where: str) -> Genotype:
    """Build a genotype from ``[[k1, k2(, r)], ...]``; CNet entries have 2 values, CDNet entries 3."""
    want = 2 if space == "cnet" else 3
    norm: list[list[int]] = []
    for i, entry in enumerate(entries, start=1):
        if not isinstance(entry, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in entry):
            raise GenotypeError(f"layer {i} is {_short(entry)}, {where}, expected a list of integers "
                                f"[k1, k2{', r' if want == 3 else ''}]")
        if len(entry) != want:
            hint = " (a CNet genotype given where CDNet is expected?)" if space == "cdnet" and len(entry) == 2 else ""
            hint = hint or (" (a CDNet genotype given where CNet is expected?)" if space == "cnet" and len(entry) == 3 else "")
            raise GenotypeError(f"layer {i} is {list(entry)}, {where}, expected {want} values in a {space} layer{hint}")
        norm.append([entry[0], entry[1], entry[2] if want == 3 else 1])
    _check(space, norm, where)
    return Genotype(space, tuple(Candidate(*e) for e in norm))


def from_dict(data: Any, where: str = "genotype", space: str | None = None) -> Genotype:
    """Parse our JSON dict or the original code's; ``space`` (if given) must match the file's."""
    if not isinstance(data, dict) or "layers" not in data:
        raise GenotypeError(f"no 'layers' list, {where}, expected a JSON object with a 'layers' list")
    layers = data["layers"]
    if not isinstance(layers, list) or not layers:
        raise GenotypeError(f"'layers' is {_short(layers)}, {where}, expected a non-empty list of [k1, k2(, r)] "
                            "entries")
    file_space = data.get("space")
    if file_space is None:  # the original code's format: infer from the entry length
        first = layers[0] if isinstance(layers[0], (list, tuple)) else []
        file_space = "cnet" if len(first) == 2 else "cdnet"
    if space is not None and file_space != space:
        raise GenotypeError(f"a {file_space} genotype, {where}, expected a {space} genotype")
    geno = from_layers(file_space, layers, where)
    alphas = data.get("alphas", data.get("alphas1"))
    if alphas is not None:
        key = "alphas" if "alphas" in data else "alphas1"
        ok = isinstance(alphas, list) and all(
            isinstance(row, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row)
            for row in alphas)
        if not ok:
            raise GenotypeError(f"'{key}' is {_short(alphas)}, {where}, expected a list of lists of numbers")
        rows = tuple(tuple(float(v) for v in row) for row in alphas)
        _check_alphas(rows, f"{where} '{key}'")
        geno = Genotype(geno.space, geno.layers, rows)
    return geno


def _check_alphas(alphas: Sequence[Sequence[float]], where: str) -> None:
    """Alphas must be finite: a NaN or Infinity (a diverged search) would make softmax(alpha) NaN downstream."""
    for i, row in enumerate(alphas):
        for j, v in enumerate(row):
            if not math.isfinite(v):
                raise GenotypeError(f"alpha is {v!r}, {where} [{i}][{j}], expected finite numbers (a diverged "
                                    "search writes NaN; rerun it)")


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def load_genotype(path: Union[str, os.PathLike], space: str | None = None) -> Genotype:
    """Read a genotype JSON file (ours or the original code's); errors name the file and the problem.

    Raises :class:`GenotypeError` when the file cannot be read, is not UTF-8, is not JSON (or nests too deeply),
    or does not describe a valid genotype (alphas included: NaN / Infinity are refused).
    """
    where = f"genotype file '{path}'"
    try:
        raw = read_regular(path)
    except OSError as e:
        raise GenotypeError(f"cannot be read ({e.strerror or e}), {where}, expected a readable JSON file") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise GenotypeError(f"not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r}), {where}, expected a "
                            "UTF-8 JSON file") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise GenotypeError(f"JSON nested too deeply, {where}, expected a JSON object with a 'layers' list"
                            ) from None
    except ValueError as e:  # also an integer of more digits than Python converts
        raise GenotypeError(f"not valid JSON ({json_error_text(e)}), {where}, expected a "
                            "JSON object with a 'layers' list") from None
    return from_dict(data, where, space)
