"""Top-k Sample Search pieces: straight-through weights, the supernet's mixed ops, derivation, latency term."""
from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch

import hwnas
from hwnas.latency import load_table
from hwnas.search import (
    SearchConfig,
    SuperNet,
    alpha_entropy,
    derive_genotype,
    latency_penalty,
    topk_genotypes,
    topk_weights,
    with_epochs,
)
from hwnas.space.candidates import candidates

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [6, 12])
def test_topk_weights_forward_is_mask_and_gradient_is_softmax(k: int, n: int) -> None:
    g = torch.Generator().manual_seed(k * 100 + n)
    alphas = torch.randn(6, n, generator=g, dtype=torch.float64, requires_grad=True)
    coeff = torch.randn(6, n, generator=g, dtype=torch.float64)
    weights, selected = topk_weights(alphas, k)
    assert set(weights.detach().unique().tolist()) <= {0.0, 1.0}
    assert (weights.detach().sum(1) == k).all()
    for layer, idx in enumerate(selected):
        assert sorted(idx) == sorted(alphas.detach()[layer].topk(k).indices.tolist())
        assert all(weights[layer, i] == 1 for i in idx)
    (weights * coeff).sum().backward()
    got = alphas.grad.clone()
    ref_alphas = alphas.detach().clone().requires_grad_(True)
    (torch.softmax(ref_alphas, -1) * coeff).sum().backward()
    torch.testing.assert_close(got, ref_alphas.grad, rtol=0, atol=1e-12)


def test_topk_ties_pick_lowest_indices_and_bad_k_is_refused() -> None:
    _, selected = topk_weights(torch.full((6, 12), 1e-3), 2)
    assert selected == [[0, 1]] * 6
    with pytest.raises(ValueError, match="1 <= k <= 6"):
        topk_weights(torch.zeros(6, 6), 7)


def _tiny_supernet(space: str = "cdnet", topk: int = 2) -> SuperNet:
    torch.manual_seed(0)
    return SuperNet(space, num_classes=5, width_mult=0.125, topk=topk)


@pytest.mark.parametrize("space,topk", [("cdnet", 2), ("cnet", 3), ("cdnet", 1)])
def test_only_topk_candidates_run_and_every_alpha_gets_a_gradient(space: str, topk: int) -> None:
    net = _tiny_supernet(space, topk)
    with torch.no_grad():
        net.alphas.copy_(torch.randn(net.alphas.shape, generator=torch.Generator().manual_seed(1)))
    calls: dict[tuple[int, int], int] = {}
    for li, layer in enumerate(net.layers):
        for ci, cand in enumerate(layer.candidates):
            cand.register_forward_hook(lambda *_, key=(li, ci): calls.__setitem__(key, calls.get(key, 0) + 1))
    out = net(torch.randn(4, 3, 32, 32))
    _, selected = topk_weights(net.alphas.detach(), topk)
    assert set(calls) == {(li, ci) for li, idx in enumerate(selected) for ci in idx}
    (out.logits[0].sum() + out.features[0].sum()).backward()
    assert net.alphas.grad is not None and (net.alphas.grad != 0).all()
    # unselected candidates have no weight gradient: they never ran
    for li, layer in enumerate(net.layers):
        for ci, cand in enumerate(layer.candidates):
            has_grad = any(p.grad is not None for p in cand.parameters())
            assert has_grad == (ci in selected[li])


def test_weight_step_keeps_gradients_away_from_alphas() -> None:
    net = _tiny_supernet()
    net(torch.randn(2, 3, 32, 32), arch_grad=False).logits[0].sum().backward()
    assert net.alphas.grad is None
    assert {id(p) for p in net.weight_parameters()}.isdisjoint({id(net.alphas)})


def test_mixed_layer_matches_its_definition() -> None:
    net = _tiny_supernet()
    layer = net.layers[2].eval()
    x = torch.randn(2, layer.candidates[0].in_channels, 8, 8)
    weights = torch.tensor([0.0] * 12)
    weights[3], weights[7] = 1.0, 1.0
    want = layer.candidates[3](x) + layer.candidates[7](x)
    torch.testing.assert_close(layer(x, weights, [3, 7]), want)


def test_derive_genotype_is_argmax_and_carries_alphas() -> None:
    alphas = torch.zeros(6, 12)
    picks = [0, 4, 11, 7, 5, 2]
    for layer, i in enumerate(picks):
        alphas[layer, i] = 1.0
    geno = derive_genotype(alphas, "cdnet")
    assert geno.indices() == picks and geno.alphas is not None and geno.alphas[1][4] == 1.0
    with pytest.raises(ValueError, match=r"\(6, 6\)"):
        derive_genotype(alphas, "cnet")


def test_topk_genotypes_match_brute_force() -> None:
    alphas = torch.randn(6, 6, generator=torch.Generator().manual_seed(3))
    k = 4
    got = topk_genotypes(alphas, "cnet", k)
    logp = torch.log_softmax(alphas.double(), -1)
    # the k best architectures only use each layer's k best candidates
    best = [row.topk(k).indices.tolist() for row in logp]
    scored = sorted(((sum(float(logp[layer, i]) for layer, i in enumerate(c)), c) for c in itertools.product(*best)),
                    key=lambda t: -t[0])[:k]
    assert [g.indices() for g, _ in got] == [list(c) for _, c in scored]
    for (_, p), (s, _) in zip(got, scored):
        assert math.isclose(p, math.exp(s), rel_tol=1e-9)
    assert got[0][0].indices() == derive_genotype(alphas, "cnet").indices()


def test_alpha_entropy_bounds() -> None:
    assert alpha_entropy(torch.zeros(6, 12)) == pytest.approx([math.log(12)] * 6)
    peaked = torch.zeros(6, 12)
    peaked[:, 0] = 50.0
    assert max(alpha_entropy(peaked)) < 1e-15


def test_expected_latency_and_its_gradient() -> None:
    table = load_table("rtx2080", space="cdnet")
    lut = table.matrix("cdnet")
    alphas = torch.randn(6, 12, generator=torch.Generator().manual_seed(5), dtype=torch.float64, requires_grad=True)
    probs = torch.softmax(alphas, -1)
    expected = table.expected_latency_ms(probs, "cdnet")
    assert float(expected.detach()) == pytest.approx(table.fixed_ms + float((probs * lut).sum().detach()), rel=1e-12)
    expected.backward()
    p = probs.detach()
    analytic = p * (lut - (p * lut).sum(1, keepdim=True))  # d/d alpha of sum_i softmax_i * LUT_i
    torch.testing.assert_close(alphas.grad, analytic)
    geno = derive_genotype(alphas.detach(), "cdnet")
    onehot = torch.zeros(6, 12, dtype=torch.float64)
    onehot[range(6), geno.indices()] = 1.0
    assert float(table.expected_latency_ms(onehot, "cdnet")) == pytest.approx(table.genotype_latency_ms(geno))


def test_latency_penalty_plain_and_with_target() -> None:
    lat = torch.tensor(120.0, requires_grad=True)
    assert float(latency_penalty(lat, 0.5).detach()) == 60.0
    assert float(latency_penalty(lat, 2.0, target_ms=150.0).detach()) == 0.0
    assert float(latency_penalty(lat, 2.0, target_ms=100.0).detach()) == pytest.approx(0.4)
    latency_penalty(lat, 2.0, target_ms=150.0).backward()
    assert float(lat.grad) == 0.0


def test_config_defaults_validation_and_epochs() -> None:
    c = SearchConfig()
    assert (c.epochs, c.batch_size, c.lr, c.lr_min, c.alpha_lr, c.alpha_betas, c.alpha_milestones, c.topk,
            c.alpha_init) == (240, 64, 0.025, 1e-4, 3e-4, (0.5, 0.999), (80, 160), 2, 1e-3)
    assert SearchConfig.from_dict(c.to_dict()) == c
    assert with_epochs(c, 24).alpha_milestones == (8, 16)
    with pytest.raises(ValueError, match="SearchConfig.topk"):
        SearchConfig(topk=5)
    with pytest.raises(ValueError, match="SearchConfig.space"):
        SearchConfig(space="resnet")
    with pytest.raises(ValueError, match="unknown field"):
        SearchConfig.from_dict({"lrr": 1})


def test_derived_genotype_file_builds_the_model(tmp_path) -> None:
    geno = derive_genotype(torch.randn(6, 12, generator=torch.Generator().manual_seed(2)), "cdnet")
    path = geno.save(tmp_path / "genotype.json")
    model = hwnas.create_model("cdnet", genotype=str(path), width_mult=0.25, num_classes=3)
    assert model.backbone.genotype.indices() == geno.indices()
    assert [c for c in candidates("cdnet")].index(model.backbone.genotype.layers[0]) == geno.indices()[0]


def test_sweep_weights_and_pareto_front() -> None:
    from hwnas.search.sweep import pareto_front, parse_weights, sweep_dir

    assert parse_weights("0, 0.01,1") == [0.0, 0.01, 1.0]
    for bad in ("", "a,b", "-1", "0,,1", "0,1,", "1_0", "\u0663", "0,0", "0,-0", "0.1,0.10", "nan", "inf"):
        with pytest.raises(ValueError, match="--sweep-latency-weight"):
            parse_weights(bad)
    assert parse_weights("-0") == [0.0] and str(sweep_dir(Path("o"), -0.0)) == str(Path("o") / "w0")
    from hwnas.search.run_config import SearchRunConfig

    with pytest.raises(ValueError, match="repeated weight"):  # a config file's list, as the flag's
        SearchRunConfig(latency_table="rtx2080", sweep_latency_weights=(0.0, 0.0))
    # (latency, accuracy): the second is dominated by the first; equal points dominate neither
    assert pareto_front([(10, 0.9), (12, 0.8), (8, 0.5), (8, 0.5), (20, 0.95)]) == [True, False, True, True, True]
