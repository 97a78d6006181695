"""Finite features always give finite distances in the right order (float32 features of ~8e20 squared to inf, so
every pair tied and evaluate wrote wrong metrics with exit 0); ordinary features give the same results as before."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from hwnas.evaluation import compute_distance, evaluate_model, evaluate_rank, re_ranking


def _feats(scale: float, dtype=torch.float32, dim: int = 512):
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, dim, generator=g, dtype=torch.float64)
    q = centres[torch.arange(8) % 4] + 0.8 * torch.randn(8, dim, generator=g, dtype=torch.float64)
    gal = centres[torch.arange(20) % 4] + 0.8 * torch.randn(20, dim, generator=g, dtype=torch.float64)
    return (q * scale).to(dtype), (gal * scale).to(dtype)


def _reference(qf, gf, metric):
    """Exact-enough distances of the same (rounded) features: float64 after removing the scale, in Python floats."""
    q, g = qf.double(), gf.double()
    if metric == "cosine":
        q = q / q.abs().amax(1, keepdim=True)
        g = g / g.abs().amax(1, keepdim=True)
        return 1 - F.normalize(q, dim=1) @ F.normalize(g, dim=1).t()
    s = max(float(q.abs().max()), float(g.abs().max()))
    q, g = q / s, g / s
    return torch.cdist(q, g).pow(2)


PIDS = ((torch.arange(8) % 4).numpy() + 1, (torch.arange(20) % 4).numpy() + 1)
CAMS = (np.zeros(8, int), np.ones(20, int))


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize(("scale", "dtype"), [(8e20, torch.float32), (1e30, torch.float32), (3e36, torch.float32),
                                              (1e-20, torch.float32), (1e-30, torch.float32),
                                              (1e200, torch.float64), (1e-200, torch.float64)])
def test_extreme_finite_features_rank_like_ordinary_ones(scale, dtype, metric):
    qf, gf = _feats(scale, dtype)
    assert torch.isfinite(qf).all() and torch.isfinite(gf).all()
    d = compute_distance(qf, gf, metric)
    assert torch.isfinite(d).all(), d
    r = evaluate_rank(d, *PIDS[:1], PIDS[1], *CAMS)
    ref = evaluate_rank(_reference(qf, gf, metric), *PIDS[:1], PIDS[1], *CAMS)
    assert r["num_nonfinite"] == 0 and r["mAP"] == pytest.approx(ref["mAP"]) and r["cmc"].tolist() == ref["cmc"].tolist()
    assert r["mINP"] == pytest.approx(ref["mINP"]) and r["cmc"][0] == 1.0


def test_float32_overflow_keeps_true_distances_in_float64():
    a, b = torch.tensor([[8e20, 0.0]]), torch.tensor([[0.0, 8e20], [8e20, 1e20]])
    d = compute_distance(a, b)
    assert d.dtype == torch.float64
    torch.testing.assert_close(d, torch.tensor([[2 * 8e20 ** 2, 1e40]], dtype=torch.float64), rtol=1e-6, atol=0)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_ordinary_features_give_the_same_distances_as_before(metric):
    qf, gf = _feats(1.0)
    if metric == "euclidean":
        before = (qf.pow(2).sum(1, keepdim=True) + gf.pow(2).sum(1) - 2 * qf @ gf.t()).clamp_min(0)
    else:
        before = 1 - F.normalize(qf, dim=1) @ F.normalize(gf, dim=1).t()
    got = compute_distance(qf, gf, metric)
    assert got.dtype == torch.float32 and torch.equal(got, before)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_non_finite_features_still_rank_last_next_to_huge_ones(metric):
    qf, gf = _feats(8e20)
    gf[3] = float("nan")
    gf[7, 0] = float("inf")
    d = compute_distance(qf, gf, metric)
    assert not torch.isfinite(d[:, [3, 7]]).any() and torch.isfinite(d[:, [0, 1, 2, 4, 5, 6]]).all()
    r = evaluate_rank(d, *PIDS[:1], PIDS[1], *CAMS)
    assert r["num_nonfinite"] == 16 and r["cmc"][0] == 1.0


@pytest.mark.parametrize(("scale", "dtype"), [(8e20, torch.float32), (1e-30, torch.float32), (1e200, torch.float64),
                                              (1e-200, torch.float64)])
def test_rerank_does_not_depend_on_the_feature_scale(scale, dtype):
    qf, gf = _feats(1.0, torch.float64, dim=6)
    base = re_ranking(qf, gf, k1=6, k2=3, lambda_value=0.3)
    got = re_ranking((qf * scale).to(dtype), (gf * scale).to(dtype), k1=6, k2=3, lambda_value=0.3)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, base, atol=1e-5 if dtype == torch.float32 else 1e-12)


class _Big(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 0, 0] * 8e20


def test_evaluate_model_with_huge_features_scores_them_correctly():
    """The path of ``hwnas evaluate`` and of the training loop's evaluation."""
    qf, gf = _feats(1.0, dim=16)
    query = [(qf.view(8, 16, 1, 1), torch.as_tensor(PIDS[0]), torch.zeros(8, dtype=torch.long))]
    gallery = [(gf.view(20, 16, 1, 1), torch.as_tensor(PIDS[1]), torch.ones(20, dtype=torch.long))]
    r = evaluate_model(_Big(), query, gallery)
    ordinary = evaluate_rank(compute_distance(qf, gf), *PIDS[:1], PIDS[1], *CAMS)
    assert r["num_nonfinite"] == 0 and r["mAP"] == pytest.approx(ordinary["mAP"]) and r["rank1"] == 1.0
    rr = evaluate_model(_Big(), query, gallery, rerank=True)
    assert rr["num_nonfinite"] == 0 and rr["rank1"] == 1.0
