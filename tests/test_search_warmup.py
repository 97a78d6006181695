"""Weight warm-up epochs before alpha updates, and the supernet's fixed-path forward."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hwnas.search import SearchConfig, Searcher
from hwnas.search.config import with_epochs
from hwnas.search.supernet import SuperNet
from hwnas.search.topk import path_weights, sample_paths
from hwnas.space.genotype import Genotype
from tests.test_search_loop import tiny_config, tiny_data

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_warmup_epochs_train_only_the_weights(tmp_path: Path) -> None:
    config = tiny_config(epochs=3, warmup_epochs=2, alpha_milestones=())
    searcher = Searcher(config, tiny_data(), tmp_path, progress=False)
    start = searcher.model.alphas.detach().clone()
    weights = [p.detach().clone() for p in searcher.model.weight_parameters()]
    for _ in range(2):
        assert searcher.in_warmup
        searcher._run_epoch(None)
    assert torch.equal(searcher.model.alphas.detach(), start)  # no alpha step, no alpha weight decay
    assert not searcher.alpha_opt.state  # Adam never stepped
    assert any(not torch.equal(a, b.detach()) for a, b in zip(weights, searcher.model.weight_parameters()))
    records = searcher.state.history
    assert [r["val_loss"] for r in records] == [None, None] and records[0]["train_loss"] > 0
    result = searcher.run()
    assert result.history[-1]["val_loss"] is not None
    assert not torch.equal(result.alphas, start)


def test_warmup_paths_cover_every_candidate_and_are_reproducible(tmp_path: Path) -> None:
    config = tiny_config(epochs=2, warmup_epochs=1)
    a = Searcher(config, tiny_data(), tmp_path / "a", progress=False)
    b = Searcher(config, tiny_data(), tmp_path / "b", progress=False)
    seen = set()
    for step in range(40):
        a.state.global_step = b.state.global_step = step
        pa = a._warmup_path()
        assert pa == b._warmup_path() and all(len(set(row)) == config.topk for row in pa)
        seen.update(i for row in pa for i in row)
    assert seen == set(range(12))
    a.state.global_step = 0
    other = Searcher(config.replace(seed=1), tiny_data(), tmp_path / "c", progress=False)
    assert a._warmup_path() != other._warmup_path()


def test_warmup_must_leave_alpha_epochs_and_scales_with_epochs() -> None:
    with pytest.raises(ValueError, match="warmup_epochs"):
        SearchConfig(epochs=4, warmup_epochs=4)
    with pytest.raises(ValueError, match="warmup_epochs"):
        SearchConfig(warmup_epochs=-1)
    config = SearchConfig(epochs=40, warmup_epochs=10, alpha_milestones=(20, 30))
    assert with_epochs(config, 20).warmup_epochs == 5 and with_epochs(config, 1).warmup_epochs == 0
    assert SearchConfig().warmup_epochs == 0  # the paper's search has none


def test_alpha_milestones_that_never_apply_are_dropped_or_refused() -> None:
    config = SearchConfig(epochs=40, warmup_epochs=10, alpha_milestones=(20, 30))
    assert with_epochs(config, 40).alpha_milestones == (20, 30) and with_epochs(config, 4).alpha_milestones == (2, 3)
    assert with_epochs(config, 2).alpha_milestones == (1,) and with_epochs(config, 1).alpha_milestones == ()
    with pytest.raises(ValueError, match="alpha_milestones"):
        SearchConfig(alpha_milestones=(30, 20))
    assert SearchConfig(epochs=2).alpha_milestones == (80, 160)  # library use may shorten the paper's (80, 160) ...
    with pytest.raises(ValueError, match=r"\[80, 160\] would never apply"):
        SearchConfig(epochs=2).check_milestones_apply()  # ... the command line refuses it


def test_fixed_path_forward_runs_exactly_that_genotype() -> None:
    torch.manual_seed(0)
    net = SuperNet("cdnet", num_classes=5, width_mult=0.125, topk=2).eval()
    geno = Genotype.fromstr("cdnet:7-9-2,3-5-1,5-9-1,3-7-2,5-7-1,3-9-2")
    path = [[i] for i in geno.indices()]
    x = torch.randn(2, 3, 32, 32)
    out = net(x, path=path).features[0]
    # the same computation by hand: stem, the chosen CDBlock of each layer, downsamples, head
    h = net.stem(x)
    for i, layer in enumerate(net.layers):
        h = layer.candidates[path[i][0]](h)
        if i in net.spec.downsample_after:
            h = net.downsamples[net.spec.downsample_after.index(i)](h)
    torch.testing.assert_close(out, net.head(h).features[0])
    net.train()
    loss = net(x, path=path).logits[0].sum()
    loss.backward()
    assert net.alphas.grad is None  # a fixed path gives alpha no gradient
    assert all(p.grad is None for p in net.layers[0].candidates[0].parameters())  # candidate 0 of layer 1 did not run


def test_path_weights_and_sampling_validate() -> None:
    w = path_weights([[0, 3]] + [[1]] * 5, (6, 12))
    assert w.sum().item() == 7 and w[0, 3] == 1
    with pytest.raises(ValueError, match="path"):
        path_weights([[12]] * 6, (6, 12))
    with pytest.raises(ValueError, match="path"):
        path_weights([[0]] * 5, (6, 12))
    g = torch.Generator().manual_seed(0)
    rows = sample_paths(6, 12, 3, g)
    assert len(rows) == 6 and all(len(set(r)) == 3 for r in rows)
