"""evaluate_rank against a straightforward per-query reference; feature extraction; re-ranking."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from hwnas.errors import UsageError
from hwnas.evaluation import compute_distance, evaluate_model, evaluate_rank, extract_features, re_ranking


def reference_rank(dist, q_pids, g_pids, q_camids, g_camids, max_rank):
    """Market-1501 protocol, one query at a time with a full stable sort (ties: gallery order)."""
    cmcs, aps, inps = [], [], []
    for i in range(len(q_pids)):
        order = np.argsort(dist[i], kind="stable")
        keep = ~((g_pids[order] == q_pids[i]) & (g_camids[order] == q_camids[i])) & (g_pids[order] != -1)
        hits = (g_pids[order] == q_pids[i])[keep].astype(float)
        if hits.sum() == 0:
            continue
        ranks = np.flatnonzero(hits) + 1
        cmc = np.zeros(max_rank)
        cmc[ranks[0] - 1:] = 1 if ranks[0] <= max_rank else 0
        cmcs.append(cmc)
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
        inps.append(len(ranks) / ranks[-1])
    return np.mean(cmcs, 0), np.mean(aps), np.mean(inps), len(q_pids) - len(cmcs)


def _check(dist, qp, gp, qc, gc, max_rank=50):
    got = evaluate_rank(dist, qp, gp, qc, gc, max_rank=max_rank)
    cmc, ap, inp, skipped = reference_rank(np.asarray(dist, np.float32), qp, gp, qc, gc, max_rank)
    np.testing.assert_allclose(got["cmc"], cmc, atol=1e-12)
    assert got["mAP"] == pytest.approx(ap, abs=1e-12) and got["mINP"] == pytest.approx(inp, abs=1e-12)
    assert got["num_skipped"] == skipped and got["num_valid"] == len(qp) - skipped
    return got


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [False, True])
def test_matches_reference_on_random_cases(seed, ties):
    rng = np.random.default_rng(seed)
    nq, ng = int(rng.integers(1, 30)), int(rng.integers(1, 120))
    qp, gp = rng.integers(1, 8, nq), rng.integers(-1, 8, ng)  # -1 junk and 0 distractors included
    qc, gc = rng.integers(0, 3, nq), rng.integers(0, 3, ng)
    dist = rng.integers(0, 4, (nq, ng)).astype(np.float32) if ties else rng.normal(size=(nq, ng)).astype(np.float32)
    _check(torch.from_numpy(dist) if seed % 2 else dist, qp, gp, qc, gc, max_rank=int(rng.integers(1, 60)))


def test_hand_made_case():
    # gallery: 0 (pid 1 cam 0: junk for the query), 1 (pid 2), 2 (pid 1 cam 1), 3 (pid 0 distractor), 4 (pid 1 cam 2)
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
    r = evaluate_rank(dist, np.array([1]), np.array([1, 2, 1, 0, 1]), np.array([0]), np.array([0, 0, 1, 0, 2]),
                      max_rank=3)
    # kept order: pid2, pid1, pid0, pid1 -> matches at ranks 2 and 4
    np.testing.assert_allclose(r["cmc"], [0, 1, 1])
    assert r["mAP"] == pytest.approx((1 / 2 + 2 / 4) / 2) and r["mINP"] == pytest.approx(2 / 4)


def test_ties_are_broken_by_gallery_order():
    gp, gc = np.array([2, 1, 1]), np.array([0, 0, 0])
    r = evaluate_rank(np.zeros((1, 3)), np.array([1]), gp, np.array([1]), gc, max_rank=3)
    np.testing.assert_allclose(r["cmc"], [0, 1, 1])
    assert r["mAP"] == pytest.approx((1 / 2 + 2 / 3) / 2)


def test_query_without_valid_match_is_skipped():
    qp, qc = np.array([1, 2]), np.array([0, 0])
    gp, gc = np.array([1, 1, 2]), np.array([0, 0, 1])  # query 0's only matches share its camera
    r = _check(np.array([[0.5, 0.2, 0.1], [0.3, 0.2, 0.9]]), qp, gp, qc, gc, max_rank=3)
    assert r["num_skipped"] == 1 and r["cmc"][-1] == 1.0


def test_all_junk_gallery():
    r = evaluate_rank(np.ones((2, 3)), np.array([1, 1]), np.array([1, -1, 1]), np.array([0, 0]),
                      np.array([0, 1, 0]), max_rank=5)
    assert r["num_skipped"] == 2 and r["num_valid"] == 0
    assert np.isnan(r["mAP"]) and np.isnan(r["cmc"]).all() and r["cmc"].shape == (5,)


def test_max_rank_larger_than_gallery():
    r = _check(np.array([[0.3, 0.1]]), np.array([1]), np.array([1, 0]), np.array([0]), np.array([1, 1]), max_rank=10)
    assert r["cmc"].shape == (10,) and r["cmc"][0] == 0 and (r["cmc"][1:] == 1).all()


def test_bad_shapes_are_reported():
    with pytest.raises(UsageError, match=r"expected shape \(len\(q_pids\), len\(g_pids\)\) = \(2, 3\)"):
        evaluate_rank(np.zeros((3, 2)), [1, 2], [1, 2, 3], [0, 0], [0, 0, 0])


class _Flipper(nn.Module):
    """Feature = first column of the image: flip averaging makes it the mean of the first and last."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0, :, 0]


def test_extract_features_with_flip():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    loader = [(x, torch.tensor([3, 4]), torch.tensor([0, 1]))]
    model = _Flipper().train()
    f, pids, cams = extract_features(model, loader)
    torch.testing.assert_close(f, x[:, 0, :, 0])
    f2, _, _ = extract_features(model, loader, flip=True)
    torch.testing.assert_close(f2, (x[:, 0, :, 0] + x[:, 0, :, -1]) / 2)
    assert pids.tolist() == [3, 4] and cams.tolist() == [0, 1] and model.training


def test_compute_distance():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0], [2.0, 0.0]])
    torch.testing.assert_close(compute_distance(a, b), torch.tensor([[5.0, 1.0]]))
    torch.testing.assert_close(compute_distance(a, b, "cosine"), torch.tensor([[1.0, 0.0]]))


def _reference_rerank(qf, gf, k1, k2, lam):
    """Dense, loop-by-loop k-reciprocal re-ranking following the paper's equations."""
    x = torch.cat([qf, gf]).double()
    d = torch.cdist(x, x).pow(2).numpy()
    d = d / d.max(1, keepdims=True)
    n = len(d)
    rank = np.argsort(d, 1, kind="stable")

    def recip(i, k):
        return np.array([j for j in rank[i, :k + 1] if i in rank[j, :k + 1]])

    v = np.zeros((n, n))
    for i in range(n):
        r = recip(i, k1)
        exp = set(r.tolist())
        for c in r:
            rc = recip(c, round(k1 / 2))
            if len(set(rc.tolist()) & set(r.tolist())) > 2 / 3 * len(rc):
                exp |= set(rc.tolist())
        idx = np.array(sorted(exp))
        w = np.exp(-d[i, idx])
        v[i, idx] = w / w.sum()
    v = np.stack([v[rank[i, :k2]].mean(0) for i in range(n)])
    nq = len(qf)
    jac = np.array([[1 - np.minimum(v[i], v[j]).sum() / (2 - np.minimum(v[i], v[j]).sum()) for j in range(nq, n)]
                    for i in range(nq)])
    return (1 - lam) * jac + lam * d[:nq, nq:]


def test_rerank_matches_dense_reference():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 6, generator=g) * 3
    qf = centres[torch.arange(8) % 4] + torch.randn(8, 6, generator=g)
    gf = centres[torch.arange(20) % 4] + torch.randn(20, 6, generator=g)
    got = re_ranking(qf, gf, k1=6, k2=3, lambda_value=0.3)
    np.testing.assert_allclose(got, _reference_rerank(qf, gf, 6, 3, 0.3), atol=1e-5)
    qp, gp = (torch.arange(8) % 4).numpy() + 1, (torch.arange(20) % 4).numpy() + 1
    r = evaluate_rank(got, qp, gp, np.zeros(8, int), np.ones(20, int))
    assert r["cmc"][0] == 1.0


# ---------------------------------------------------------------- the ranking rule (issue 12): NaN last, exact ties
NEG_NAN = -np.float64("nan")  # NaN with the sign bit set: sorted before every number by a bit-pattern sort


def _one_query(dist_row, g_pids, dtype=np.float64):
    g_pids = np.asarray(g_pids)
    return evaluate_rank(np.asarray([dist_row], dtype=dtype), np.array([1]), g_pids, np.array([0]),
                         np.ones(len(g_pids), int), max_rank=len(g_pids))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [NEG_NAN, np.nan, -np.inf, np.inf])
def test_non_finite_distances_rank_last(bad, dtype):
    """One overflowed gallery feature must not push the true match down: rank-1 is 1.00, not 0.00."""
    r = _one_query([bad, 0.5, 0.7], [2, 1, 3], dtype)
    assert r["cmc"][0] == 1.0 and r["mAP"] == 1.0 and r["num_nonfinite"] == 1
    r = _one_query([0.2, bad, 0.7], [2, 1, 3], dtype)  # the true match itself is non-finite: last, after 0.7
    assert r["cmc"].tolist() == [0.0, 0.0, 1.0] and r["mAP"] == pytest.approx(1 / 3)


def test_non_finite_distances_tie_in_gallery_order():
    r = _one_query([np.nan, np.inf, NEG_NAN, 0.1], [2, 1, 1, 3])  # order: 0.1, nan(0), inf(1), -nan(2)
    assert r["cmc"].tolist() == [0.0, 0.0, 1.0, 1.0] and r["mAP"] == pytest.approx((1 / 3 + 2 / 4) / 2)


def test_negative_and_positive_zero_tie():
    r = _one_query([0.0, -0.0], [2, 1])  # a tie: gallery order puts the wrong identity first
    assert r["cmc"].tolist() == [0.0, 1.0]
    r = _one_query([-0.0, 0.0], [2, 1])
    assert r["cmc"].tolist() == [0.0, 1.0]


def test_float64_distances_are_not_rounded_to_float32():
    r = _one_query([1.0 + 1e-12, 1.0], [2, 1])  # equal in float32 (a tie won by the wrong identity)
    assert r["cmc"][0] == 1.0
    assert np.float32(1.0 + 1e-12) == np.float32(1.0)


def test_rank_gallery_follows_the_same_rule():
    from hwnas.evaluation.rank import rank_gallery

    d = np.array([[NEG_NAN, 0.3, -0.0, 0.0, np.inf, 0.1], [1.0, 1.0 + 1e-12, np.nan, 1.0, 0.5, -np.inf]])
    assert rank_gallery(d).tolist() == [[2, 3, 5, 1, 0, 4], [4, 0, 3, 1, 2, 5]]


@pytest.mark.parametrize("seed", range(3))
def test_exact_ranking_matches_a_full_sort_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    nq, ng = 6, 300
    qp, gp = rng.integers(1, 4, nq), rng.integers(0, 4, ng)
    qc, gc = rng.integers(0, 2, nq), rng.integers(0, 2, ng)
    dist = rng.integers(0, 3, (nq, ng)).astype(np.float64)
    dist[rng.random((nq, ng)) < 0.05] = np.nan
    got = evaluate_rank(dist, qp, gp, qc, gc, max_rank=20)
    keyed = np.where(np.isfinite(dist), dist, np.inf)
    cmc, ap, inp, _ = reference_rank(keyed, qp, gp, qc, gc, 20)
    np.testing.assert_allclose(got["cmc"], cmc, atol=1e-12)
    assert got["mAP"] == pytest.approx(ap, abs=1e-12) and got["mINP"] == pytest.approx(inp, abs=1e-12)


class _Pick(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, 0, 0]


def test_evaluate_model_computes_rank_k_beyond_max_rank():
    """max_rank=5 with the first true match at rank 7: rank-5 is 0 and rank-10 is 1 (not a copy of rank-5)."""
    query = [(torch.zeros(1, 1, 1, 1), torch.tensor([1]), torch.tensor([0]))]
    g = torch.arange(12, dtype=torch.float64).view(12, 1, 1, 1) + 1  # distances 1, 4, 9, ... from the query
    g_pids = torch.tensor([2, 3, 4, 2, 3, 4, 1, 2, 3, 4, 2, 3])  # the match sits at position 7
    gallery = [(g, g_pids, torch.ones(12, dtype=torch.long))]
    r = evaluate_model(_Pick(), query, gallery, max_rank=5)
    assert (r["rank1"], r["rank5"], r["rank10"]) == (0.0, 0.0, 1.0)
    assert len(r["cmc"]) == 5


def test_compute_distance_keeps_float64():
    a = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[1.0 + 1e-4, 0.0]], dtype=torch.float64)
    d = compute_distance(a, b)
    assert d.dtype == torch.float64 and float(d) == pytest.approx(1e-8, rel=1e-6)
    assert float(compute_distance(a.float(), b.float())) != pytest.approx(1e-8, rel=1e-2)  # float32 cancels


def test_rerank_with_a_non_finite_gallery_feature_ranks_it_last():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 6, generator=g) * 3
    qf = centres[torch.arange(8) % 4] + torch.randn(8, 6, generator=g)
    gf = centres[torch.arange(20) % 4] + torch.randn(20, 6, generator=g)
    gf[5] = float("nan")
    gf[6, 0] = float("inf")
    got = re_ranking(qf, gf, k1=6, k2=3, lambda_value=0.3)
    assert np.isinf(got[:, [5, 6]]).all() and np.isfinite(np.delete(got, [5, 6], axis=1)).all()
    qp, gp = (torch.arange(8) % 4).numpy() + 1, (torch.arange(20) % 4).numpy() + 1
    r = evaluate_rank(got, qp, gp, np.zeros(8, int), np.ones(20, int))
    assert r["cmc"][0] == 1.0 and r["num_nonfinite"] == 16


def test_extract_features_restores_every_submodules_own_mode():
    model = nn.Sequential(_Pick(), nn.Dropout(0.5)).train()
    model[1].eval()  # deliberately frozen by the caller
    x = torch.ones(2, 1, 1, 1)
    extract_features(model, [(x, torch.tensor([1, 2]), torch.tensor([0, 0]))])
    assert model.training and model[0].training and not model[1].training


def test_ranked_results_figure_orders_by_the_same_rule():
    from hwnas.viz.ranks import rank_queries

    query = [("q.jpg", 1, 0)]
    gallery = [("a.jpg", 2, 1), ("b.jpg", 1, 1), ("c.jpg", 3, 1), ("d.jpg", 4, 1)]
    dist = np.array([[NEG_NAN, 1.0 + 1e-12, 1.0, -np.inf]])
    (row,) = rank_queries(dist, query, gallery, [0], topk=4)
    assert [g.path for g in row.gallery] == ["c.jpg", "b.jpg", "a.jpg", "d.jpg"]
