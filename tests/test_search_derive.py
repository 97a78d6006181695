"""search.derive=score: the genotype chosen by the supernet's fixed-path score (hwnas.search.scoring)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hwnas.errors import UsageError
from hwnas.latency import load_table
from hwnas.search import Searcher
from hwnas.search.report import build_report, render_markdown, summary_lines
from hwnas.search.scoring import random_genotypes, score_path, select_by_score
from hwnas.space.genotype import Genotype
from tests.test_search_loop import tiny_config, tiny_data

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_score_selection_picks_the_best_scored_genotype_and_reports_it(tmp_path: Path) -> None:
    data = tiny_data(ids=3)
    config = tiny_config(epochs=1, checkpoint_every=0, derive="score", derive_samples=6, share_weights="io")
    searcher = Searcher(config, data, tmp_path / "s", None, progress=False)
    result = searcher.run()
    sel = result.selection
    assert sel is not None and sel["method"] == "score" and sel["samples"] == 6 and sel["latency_bound_ms"] is None
    alpha_genotype = Genotype.fromstr(sel["alpha_genotype"]["genotype"])
    # independently: score the same pool (alpha genotype first, the same seeded random draws) and take the best
    from hwnas.search._data import mix_seed
    from hwnas.search.loop import DERIVE_STREAM

    g = torch.Generator().manual_seed(mix_seed(config.seed, DERIVE_STREAM, 0))
    pool = [alpha_genotype, *random_genotypes(config.space, 6, g)]
    scores = {p.tostr(): score_path(searcher.model, p, data) for p in pool}
    best = max(scores.values(), key=lambda s: (s.val_acc, -s.val_ce))
    assert result.genotype.tostr() == sel["top"][0]["genotype"]
    assert (scores[result.genotype.tostr()].val_acc, scores[result.genotype.tostr()].val_ce) == (best.val_acc,
                                                                                                  best.val_ce)
    assert sel["scored"] == len(scores)
    report = build_report(config, result, None, "tiny", 1.0)
    assert report["final"]["selection"] == sel and report["final"]["genotype"] == result.genotype.tostr()
    assert "best by the supernet's score" in render_markdown(report)
    assert any("search.derive=score" in line for line in summary_lines(result))


def test_with_a_latency_table_only_genotypes_no_slower_than_argmax_alpha_compete(tmp_path: Path) -> None:
    data, table = tiny_data(ids=3), load_table("rtx2080", space="cdnet")
    config = tiny_config(epochs=1, checkpoint_every=0, derive="score", derive_samples=8, latency_weight=0.01)
    result = Searcher(config, data, tmp_path / "s", table, progress=False).run()
    bound = result.selection["latency_bound_ms"]
    assert bound == pytest.approx(table.genotype_latency_ms(Genotype.fromstr(
        result.selection["alpha_genotype"]["genotype"])))
    assert table.genotype_latency_ms(result.genotype) <= bound + 1e-9
    assert all(table.genotype_latency_ms(Genotype.fromstr(r["genotype"])) <= bound + 1e-9
               for r in result.selection["top"])
    unbound = Searcher(config.replace(latency_weight=0.0), data, tmp_path / "w0", table, progress=False).run()
    assert unbound.selection["latency_bound_ms"] is None  # weight 0: the table only reports E[lat]
    assert unbound.selection["scored"] >= 8  # every distinct genotype of the pool (9 drawn) competes


def test_alpha_is_the_default_and_bad_settings_are_refused(tmp_path: Path) -> None:
    result = Searcher(tiny_config(epochs=1, checkpoint_every=0), tiny_data(ids=3), tmp_path / "s", None,
                      progress=False).run()
    assert result.selection is None
    for bad in ({"derive": "best"}, {"derive_samples": 0}, {"derive_samples": 100_001}):
        with pytest.raises(UsageError, match=next(iter(bad))):
            tiny_config(**bad)
    with pytest.raises(UsageError, match="no genotype"):
        select_by_score(None, None, [Genotype.fromstr("cdnet:3-5-1,3-5-1,3-5-1,3-5-1,3-5-1,3-5-1")],
                        allowed=lambda g: False)


def _score_on_a_deep_copy(supernet, genotype, data, bn_batches=8):
    """The reference: the former implementation, which recalibrated and scored a deep copy of the supernet."""
    import copy

    from torch.nn import functional as F

    from hwnas.search.scoring import _recalibrate_bn

    net, path = copy.deepcopy(supernet), [[i] for i in genotype.indices()]
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        _recalibrate_bn(net, path, data, bn_batches)
        net.eval()
        xs = [data.val.batch(0, i) for i in range(data.val.num_batches(0))]
        logits = [(net(x, path=path).logits[0], y) for x, y in xs]
    n = sum(len(y) for _, y in logits)
    return (sum(int((lg.argmax(1) == y).sum()) for lg, y in logits) / n,
            sum(float(F.cross_entropy(lg, y, reduction="sum")) for lg, y in logits) / n)


def test_scoring_a_path_leaves_the_supernet_as_it_was_and_matches_scoring_a_copy() -> None:
    from hwnas.search.supernet import SuperNet

    data = tiny_data(ids=3)
    torch.manual_seed(0)
    net = SuperNet("cdnet", 3, 0.125, 2)
    with torch.no_grad():  # non-trivial statistics and a BN momentum to keep
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    net.train()
    net.layers[0].eval()  # a mixed train/eval state is kept too
    before = {k: v.clone() for k, v in net.state_dict().items()}
    modes = [m.training for m in net.modules()]
    momenta = [m.momentum for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    g = torch.Generator().manual_seed(3)
    pool = random_genotypes("cdnet", 3, g)
    scores = [score_path(net, p, data, bn_batches=2) for p in pool]
    for p, s in zip(pool, scores):
        assert (s.val_acc, s.val_ce) == pytest.approx(_score_on_a_deep_copy(net, p, data, 2), rel=1e-6, abs=1e-9)
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a buffer or weight changed"
    assert [m.training for m in net.modules()] == modes
    assert [m.momentum for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)] == momenta
    # scoring in another order gives the same scores: nothing carries over from one path to the next
    assert [score_path(net, p, data, bn_batches=2) for p in reversed(pool)] == list(reversed(scores))
