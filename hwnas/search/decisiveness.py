"""How decided a search is: per layer, the entropy of softmax(alpha) as a fraction of ln n and the
probability margin between the chosen candidate (argmax alpha) and the runner-up.

A layer whose alphas never moved has entropy ln n (fraction 1.0) and margin 0: its "chosen" candidate is
an accident of the tie-break. A search whose mean entropy fraction is above
:data:`UNDECIDED_ENTROPY_FRACTION` is reported as undecided: its genotype is close to arbitrary.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch

from hwnas.errors import UsageError
from hwnas.space.candidates import candidates

UNDECIDED_ENTROPY_FRACTION = 0.98  # mean entropy above 0.98 ln n: the alphas did not move


@dataclass(frozen=True)
class LayerDecision:
    """One searchable layer: chosen candidate and runner-up (``k1-k2[-r]`` strings) with their softmax(alpha)
    probabilities, the entropy in nats and as a fraction of ln n, and ``margin = probability - runner_up_probability``.
    """

    layer: int  # 1-based
    candidate: str
    probability: float
    runner_up: str
    runner_up_probability: float
    margin: float
    entropy_nats: float
    entropy_fraction: float


@dataclass(frozen=True)
class Decisiveness:
    """Per-layer decisions and their means; ``undecided`` when ``mean_entropy_fraction > threshold``."""

    layers: tuple[LayerDecision, ...]
    mean_entropy_fraction: float
    mean_margin: float
    threshold: float = UNDECIDED_ENTROPY_FRACTION

    @property
    def undecided(self) -> bool:
        return self.mean_entropy_fraction > self.threshold

    def warning(self) -> str | None:
        """A one-line warning for an undecided search, else None."""
        if not self.undecided:
            return None
        return (f"WARNING: the alphas barely moved (mean alpha entropy {self.mean_entropy_fraction:.4f} ln n > "
                f"{self.threshold} ln n, mean margin {self.mean_margin:.4f}): this genotype is close to arbitrary; "
                f"search longer or with a larger alpha learning rate before relying on it")

    def to_dict(self) -> dict[str, Any]:
        return {"layers": [asdict(d) for d in self.layers], "mean_entropy_fraction": self.mean_entropy_fraction,
                "mean_margin": self.mean_margin, "threshold": self.threshold, "undecided": self.undecided,
                "warning": self.warning()}


def decisiveness(alphas: torch.Tensor, space: str, threshold: float = UNDECIDED_ENTROPY_FRACTION) -> Decisiveness:
    """Entropy fraction and chosen-vs-runner-up margin of softmax(alpha) per layer (alphas: layers x n).

    The chosen candidate is ``derive_genotype``'s (argmax alpha, ties to the lower index); the runner-up is
    the next one in the same stable order. Needs n >= 2 candidates per layer.
    """
    names = [c.tostr(space) for c in candidates(space)]
    a = alphas.detach().double().cpu()
    if a.dim() != 2 or a.shape[1] != len(names):
        raise UsageError(f"alphas of shape {tuple(a.shape)}, {space} space, expected shape (layers, {len(names)})")
    logp = torch.log_softmax(a, dim=-1)
    ln_n = math.log(len(names))
    layers = []
    for i, (row, lp) in enumerate(zip(a, logp)):
        first, second = torch.sort(row, descending=True, stable=True).indices[:2].tolist()
        p = lp.exp()
        entropy = float(-(p * lp).sum())
        layers.append(LayerDecision(layer=i + 1, candidate=names[first], probability=float(p[first]),
                                    runner_up=names[second], runner_up_probability=float(p[second]),
                                    margin=float(p[first] - p[second]), entropy_nats=entropy,
                                    entropy_fraction=entropy / ln_n))
    n = len(layers)
    return Decisiveness(tuple(layers), sum(d.entropy_fraction for d in layers) / n,
                        sum(d.margin for d in layers) / n, threshold)


def format_decisiveness(d: Decisiveness, warn: bool = True) -> list[str]:
    """Human-readable lines: one per layer, the means, and (``warn``) the warning when undecided."""
    lines = ["decisiveness per layer (alpha entropy as a fraction of ln n; margin = p(chosen) - p(runner-up)):"]
    for x in d.layers:
        lines.append(f"  layer {x.layer}: {x.candidate:<7} entropy {x.entropy_fraction:.4f} ln n, margin "
                     f"{x.margin:.4f} (p {x.probability:.4f} vs {x.runner_up_probability:.4f} for {x.runner_up})")
    lines.append(f"  mean: entropy {d.mean_entropy_fraction:.4f} ln n, margin {d.mean_margin:.4f}")
    warning = d.warning()
    if warn and warning:
        lines.append(warning)
    return lines
