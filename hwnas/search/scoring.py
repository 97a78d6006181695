"""The supernet's score of one architecture, and the choice of a genotype by that score.

For a genotype the trained search supernet runs only that genotype's candidate in every layer
(:meth:`hwnas.search.supernet.SuperNet.forward` with ``path``). Its BatchNorm statistics were accumulated over
the search's mixtures of candidates, so they are first re-estimated on that path from a few training batches
(train mode except dropout, no gradients), then the path is scored in eval mode on the whole validation split:
identity top-1 accuracy and cross-entropy. This is the usual practice of one-shot NAS (single-path one-shot,
SPOS: Guo et al., 2020, https://arxiv.org/abs/1904.00420, section 3.3). Scores are deterministic: they do not
depend on the global random state.

``select_by_score`` is hwnas's alternative to the paper's final step (argmax alpha): it scores the alpha genotype
and ``samples`` random genotypes and keeps the best (``search.derive=score``; docs/search.md).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from hwnas.errors import UsageError
from hwnas.search._data import SearchData
from hwnas.search.supernet import SuperNet
from hwnas.space.candidates import candidates
from hwnas.space.genotype import Genotype


@dataclass(frozen=True)
class PathScore:
    """Validation identity top-1 (fraction) and mean cross-entropy (nats) of one fixed path."""

    genotype: str
    val_acc: float
    val_ce: float


@torch.no_grad()
def _recalibrate_bn(net: nn.Module, path: list[list[int]], data: SearchData, batches: int) -> None:
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the recalibration batches
    net.train()
    for m in net.modules():  # eval mode sees no dropout, so neither do the statistics it will use (and no RNG)
        if isinstance(m, nn.modules.dropout._DropoutNd):
            m.eval()
    n = min(batches, data.train.num_batches(0))
    for i in range(n):
        x, _ = data.train.batch(0, i)
        net(x, path=path)


@contextmanager
def _state_restored(net: nn.Module) -> Iterator[None]:
    """Every BatchNorm's statistics and momentum and every module's train/eval flag as they were, afterwards: what
    :func:`_recalibrate_bn` and scoring change. Costs a copy of the BN buffers, not of the supernet (a deep copy
    of every candidate's weights took seconds per genotype)."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum, {k: b.clone() for k, b in m.named_buffers(recurse=False)}) for m in bns]
    modes = [(m, m.training) for m in net.modules()]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, momentum, buffers in saved:
                m.momentum = momentum
                for k, b in buffers.items():
                    getattr(m, k).copy_(b)
        for m, training in modes:
            m.training = training


@torch.no_grad()
def score_path(supernet: SuperNet, genotype: Genotype, data: SearchData, bn_batches: int = 8) -> PathScore:
    """Score ``genotype``'s path on ``data.val``. The supernet's BatchNorm statistics are recalibrated for the
    path and restored afterwards, with its train/eval flags: the supernet is left as it was."""
    path = [[i] for i in genotype.indices()]
    correct = seen = 0
    ce = 0.0
    with _state_restored(supernet):
        with torch.random.fork_rng(devices=[]):  # the same score in any process, whatever ran before
            torch.manual_seed(0)
            _recalibrate_bn(supernet, path, data, bn_batches)
        supernet.eval()
        for i in range(data.val.num_batches(0)):
            x, y = data.val.batch(0, i)
            logits = supernet(x, path=path).logits[0]
            correct += int((logits.argmax(1) == y).sum())
            ce += float(F.cross_entropy(logits, y, reduction="sum"))
            seen += len(y)
    return PathScore(genotype.tostr(), correct / max(seen, 1), ce / max(seen, 1))


def random_genotypes(space: str, count: int, generator: torch.Generator, layers: int = 6) -> list[Genotype]:
    """``count`` genotypes with each layer's candidate drawn uniformly (with ``generator``)."""
    choices = candidates(space)
    out = []
    for _ in range(count):
        idx = torch.randint(len(choices), (layers,), generator=generator).tolist()
        out.append(Genotype.fromstr(f"{space}:" + ",".join(choices[i].tostr(space) for i in idx)))
    return out


def select_by_score(supernet: SuperNet, data: SearchData, pool: Sequence[Genotype], bn_batches: int = 8,
                    allowed: Callable[[Genotype], bool] | None = None) -> list[PathScore]:
    """Score every distinct genotype of ``pool`` that ``allowed`` accepts (all by default) and return the scores,
    best first: highest validation accuracy, then lowest cross-entropy, then the order of ``pool`` (so the first
    of equals wins; put the alpha genotype first). Raises UsageError when nothing is allowed."""
    seen: dict[str, int] = {}
    for g in pool:
        if (allowed is None or allowed(g)) and g.tostr() not in seen:
            seen[g.tostr()] = len(seen)
    if not seen:
        raise UsageError(f"no genotype of the {len(pool)} allowed, select_by_score, expected at least one genotype of "
                         "the pool to pass the filter")
    scores = [score_path(supernet, Genotype.fromstr(key), data, bn_batches) for key in seen]
    return sorted(scores, key=lambda s: (-s.val_acc, s.val_ce, seen[s.genotype]))
