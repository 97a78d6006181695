"""Cross-entropy with label smoothing, batch-hard triplet and ReIDLoss, against plain references."""
from __future__ import annotations

import pytest
import torch

from hwnas.errors import UsageError
from hwnas.losses import CrossEntropyLoss, ReIDLoss, TripletLoss, pairwise_distance
from hwnas.models._output import ReIDOutput


def _ref_triplet(x: torch.Tensor, y: torch.Tensor, margin: float) -> torch.Tensor:
    terms = []
    for i in range(len(y)):
        pos = [torch.dist(x[i], x[j]) for j in range(len(y)) if j != i and y[j] == y[i]]
        neg = [torch.dist(x[i], x[j]) for j in range(len(y)) if y[j] != y[i]]
        if pos and neg:
            terms.append(torch.relu(torch.stack(pos).max() - torch.stack(neg).min() + margin))
    return torch.stack(terms).mean()


@pytest.mark.parametrize("n,d", [(8, 5), (12, 33)])
def test_triplet_matches_reference_with_gradients(n, d):
    g = torch.Generator().manual_seed(n)
    x = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 3, (n,), generator=g)
    y[0] = y[1]  # at least one positive pair
    got = TripletLoss(0.3)(x, y)
    want = _ref_triplet(x, y, 0.3)
    torch.testing.assert_close(got.double(), want)
    (gx,) = torch.autograd.grad(got, x)
    (wx,) = torch.autograd.grad(want, x)
    torch.testing.assert_close(gx, wx, atol=1e-5, rtol=1e-4)


def test_triplet_edge_cases():
    x = torch.randn(4, 3, requires_grad=True)
    assert TripletLoss()(x, torch.tensor([0, 1, 2, 3])).item() == 0.0  # no positives: 0, still differentiable
    assert TripletLoss()(x, torch.tensor([1, 1, 1, 1])).item() == 0.0  # no negatives
    far = torch.tensor([[0.0, 0], [0, 0.1], [5, 0], [5, 0.1]])
    assert TripletLoss(0.3)(far, torch.tensor([0, 0, 1, 1])).item() == 0.0  # margin satisfied
    torch.testing.assert_close(pairwise_distance(far)[0, 2], torch.tensor(5.0))


def test_cross_entropy_label_smoothing():
    logits = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 1, 2, 3, 0, 1])
    eps = 0.1
    logp = logits.log_softmax(1)
    target = torch.full_like(logp, eps / 4).scatter(1, y[:, None], 1 - eps + eps / 4)
    torch.testing.assert_close(CrossEntropyLoss(eps)(logits, y), -(target * logp).sum(1).mean())
    torch.testing.assert_close(CrossEntropyLoss()(logits, y), -logp[torch.arange(6), y].mean())
    with pytest.raises(ValueError, match="label_smoothing"):
        CrossEntropyLoss(1.0)


def test_reid_loss_sums_every_output():
    g = torch.Generator().manual_seed(1)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    out = ReIDOutput([torch.randn(6, 3, generator=g), torch.randn(6, 3, generator=g)],
                     [torch.randn(6, 8, generator=g), torch.randn(6, 4, generator=g)], [])
    total, parts = ReIDLoss(label_smoothing=0.0, margin=0.3, triplet_weight=0.5)(out, y)
    ce = sum(CrossEntropyLoss()(lg, y) for lg in out.logits)
    tri = sum(TripletLoss(0.3)(f, y) for f in out.features)
    torch.testing.assert_close(total, ce + 0.5 * tri)
    torch.testing.assert_close(parts["ce/1"], CrossEntropyLoss()(out.logits[1], y))
    torch.testing.assert_close(parts["triplet"], tri)
    assert parts["acc"] == (out.logits[0].argmax(1) == y).float().mean()
    with pytest.raises(UsageError, match="expected the ReIDOutput of a model in training mode"):
        ReIDLoss()(torch.zeros(6, 3), y)
