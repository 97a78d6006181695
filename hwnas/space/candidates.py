"""Candidate operations of one searchable layer, in the seed's documented order.

A candidate is a CDBlock setting ``(k1, k2, r)``: two branches with receptive fields ``k1`` and ``k2``
(``k // 2`` stacked LiteConvs each) repeated ``r`` times. CNet's candidates all have ``r = 1``.
The position of a candidate in its list is its index in the architecture parameters ``alpha``.
"""
from __future__ import annotations

from dataclasses import dataclass

from hwnas.errors import UsageError

KERNEL_SIZES: tuple[int, ...] = (3, 5, 7, 9)
REPEATS: tuple[int, ...] = (1, 2)
NUM_SEARCHABLE_LAYERS = 6
SPACES: tuple[str, ...] = ("cnet", "cdnet")


@dataclass(frozen=True, order=True)
class Candidate:
    """One candidate op: branch kernel sizes ``k1 < k2`` and the CBlock repeat count ``r``."""

    k1: int
    k2: int
    r: int = 1

    @property
    def depths(self) -> tuple[int, int]:
        """Stacked LiteConvs per branch (kernel k means k // 2 layers)."""
        return self.k1 // 2, self.k2 // 2

    def to_list(self, space: str) -> list[int]:
        return [self.k1, self.k2] if space == "cnet" else [self.k1, self.k2, self.r]

    def tostr(self, space: str) -> str:
        return "-".join(str(v) for v in self.to_list(space))

    def __str__(self) -> str:
        return f"({self.k1},{self.k2},{self.r})"


CNET_CANDIDATES: tuple[Candidate, ...] = tuple(
    Candidate(k1, k2) for k1, k2 in ((3, 5), (3, 7), (5, 7), (3, 9), (5, 9), (7, 9))
)

CDNET_CANDIDATES: tuple[Candidate, ...] = tuple(
    Candidate(*c)
    for c in (
        (3, 5, 1), (3, 7, 1), (5, 7, 1), (3, 5, 2), (3, 7, 2), (5, 7, 2),
        (3, 9, 1), (5, 9, 1), (7, 9, 1), (3, 9, 2), (5, 9, 2), (7, 9, 2),
    )
)


def candidates(space: str) -> tuple[Candidate, ...]:
    """The ordered candidate list of ``space`` ('cnet' or 'cdnet')."""
    if space == "cnet":
        return CNET_CANDIDATES
    if space == "cdnet":
        return CDNET_CANDIDATES
    raise UsageError(f"unknown search space {space!r}, space, expected one of {', '.join(SPACES)}")
