"""share_weights='io': the candidates of a supernet layer share their 1x1 convolutions (an hwnas option)."""
from __future__ import annotations

import pytest
import torch

from hwnas.errors import UsageError
from hwnas.search._checkpoint import config_mismatch
from hwnas.search.config import SearchConfig
from hwnas.search.supernet import SuperNet


def _net(share: str) -> SuperNet:
    torch.manual_seed(0)
    return SuperNet("cdnet", num_classes=5, width_mult=0.125, topk=2, share_weights=share)


def test_io_shares_the_1x1_convolutions_and_nothing_else():
    net, plain = _net("io"), _net("none")
    for layer in net.layers:
        first, deep = layer.candidates[0][0], next(c for c in layer.candidates if len(c) == 2)
        for cand in layer.candidates:
            assert cand[0].squeeze is first.squeeze and cand[0].restore is first.restore
            assert cand[0].shortcut is first.shortcut
            if len(cand) == 2:
                assert cand[1].squeeze is deep[1].squeeze and cand[1].restore is deep[1].restore
        assert len({id(c[0].branches) for c in layer.candidates}) == len(layer.candidates)  # kernels stay own
        assert len({id(c[0].gate) for c in layer.candidates}) == len(layer.candidates)
    for layer in plain.layers:  # the paper's supernet: nothing shared
        assert len({id(c[0].squeeze) for c in layer.candidates}) == len(layer.candidates)
    n_io = sum(p.numel() for p in net.parameters())
    n_plain = sum(p.numel() for p in plain.parameters())
    assert n_io < n_plain


def test_io_supernet_trains_and_round_trips_through_its_state_dict():
    net = _net("io").train()
    x = torch.randn(4, 3, 64, 32)
    out = net(x, arch_grad=True)
    sum(o.sum() for o in out.logits).backward()
    assert net.alphas.grad is not None and torch.isfinite(net.alphas.grad).all()
    squeeze = net.layers[0].candidates[0][0].squeeze[0].weight
    assert squeeze.grad is not None and squeeze.grad.abs().sum() > 0
    net.eval()
    path = [[3]] * 6
    ref = net(x, path=path).features[0]
    again = _net("io").eval()
    again.load_state_dict(net.state_dict())
    assert torch.equal(again(x, path=path).features[0], ref)


def test_bad_share_mode_is_refused():
    with pytest.raises(UsageError, match="share_weights"):
        SearchConfig(share_weights="all")
    with pytest.raises(UsageError, match="share_weights"):
        SuperNet("cdnet", num_classes=5, width_mult=0.125, share_weights="all")


def test_a_checkpoint_from_before_the_field_resumes_as_none():
    saved = SearchConfig().to_dict()
    del saved["share_weights"]
    assert config_mismatch(saved, SearchConfig().to_dict()) == []
    assert config_mismatch(saved, SearchConfig(share_weights="io").to_dict()) == ["share_weights 'none' -> 'io'"]
