"""From architecture parameters to architectures: the derived genotype and the k most probable ones."""
from __future__ import annotations

import math

import torch

from hwnas.errors import UsageError
from hwnas.space.candidates import NUM_SEARCHABLE_LAYERS, candidates
from hwnas.space.genotype import Genotype


def _check(alphas: torch.Tensor, space: str) -> None:
    n = len(candidates(space))
    if tuple(alphas.shape) != (NUM_SEARCHABLE_LAYERS, n):
        raise UsageError(f"alphas of shape {tuple(alphas.shape)}, {space} space, expected shape "
                         f"({NUM_SEARCHABLE_LAYERS}, {n})")


def _alpha_rows(alphas: torch.Tensor) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(v) for v in row) for row in alphas.detach().cpu())


def derive_genotype(alphas: torch.Tensor, space: str) -> Genotype:
    """The searched architecture: argmax alpha per layer (ties: lower index), with the alphas attached."""
    _check(alphas, space)
    idx = [int(torch.sort(row, descending=True, stable=True).indices[0]) for row in alphas.detach().cpu()]
    geno = Genotype.from_indices(space, idx)
    return Genotype(geno.space, geno.layers, _alpha_rows(alphas))


def topk_genotypes(alphas: torch.Tensor, space: str, k: int) -> list[tuple[Genotype, float]]:
    """The ``k`` architectures of highest joint probability ``prod_l softmax(alpha_l)[c_l]``, best first.

    Layers are independent, so a beam of width ``k`` over layers is exact. Returns (genotype, probability).
    """
    _check(alphas, space)
    if k < 1:
        raise UsageError(f"k={k}, topk_genotypes, expected an integer >= 1")
    logp = torch.log_softmax(alphas.detach().double().cpu(), dim=-1)
    beam: list[tuple[float, list[int]]] = [(0.0, [])]
    for row in logp:
        grown = [(score + float(row[i]), path + [i]) for score, path in beam for i in range(row.numel())]
        # stable sort on score only: equal scores keep the lexicographic (lower index first) order
        beam = sorted(grown, key=lambda t: -t[0])[:k]
    return [(Genotype.from_indices(space, path), math.exp(score)) for score, path in beam]


def alpha_entropy(alphas: torch.Tensor) -> list[float]:
    """Entropy (nats) of softmax(alpha) per layer: log(n) at the start, 0 once a layer has decided."""
    logp = torch.log_softmax(alphas.detach().double().cpu(), dim=-1)
    return [float(-(lp.exp() * lp).sum()) for lp in logp]
