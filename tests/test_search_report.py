"""The honest search report: per-layer decisiveness (entropy / ln n, chosen-vs-runner-up margin), the warning
for a search whose alphas did not move, and the two validation accuracies under distinct names."""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
import torch

from hwnas.search import UNDECIDED_ENTROPY_FRACTION, decisiveness, derive_genotype
from hwnas.search.loop import SearchResult
from hwnas.search.report import build_report, render_markdown, summary_lines, write_outputs
from hwnas.search.sweep import render_sweep
from hwnas.search.config import SearchConfig
from hwnas.space.candidates import candidates


@pytest.fixture(autouse=True)
def _no_profiling(monkeypatch):
    """Profiling a width-1 network at 256x128 takes seconds; these tests are about the report's wording."""
    def describe(genotype, table, num_classes=751):
        return {"genotype": genotype.tostr(), "layers": [], "depth": genotype.depth, "params_m": 1.0,
                "flops_m": 100.0, "input_size": [256, 128], "width_mult": 1.0, "predicted_latency_ms": None}

    monkeypatch.setattr("hwnas.search.report.describe_genotype", describe)


def _result(alphas: torch.Tensor, space: str = "cdnet") -> SearchResult:
    record = {"epoch": 1, "steps": 2, "lr": 0.02, "alpha_lr": 0.03, "time_s": 1.0, "train_loss": 5.0,
              "train_ce": 4.0, "train_triplet": 1.0, "train_acc": 0.25, "val_loss": 5.5, "val_acc_train_mode": 0.125,
              "latency_ms": None, "latency_penalty": None, "alpha_entropy": 2.0, "alpha_entropy_per_layer": [2.0] * 6,
              "alpha_entropy_fraction": 0.9, "alpha_margin": 0.01, "alphas": alphas.tolist(),
              "genotype": derive_genotype(alphas, space).tostr()}
    return SearchResult(genotype=derive_genotype(alphas, space), alphas=alphas, topk=[], history=[record],
                        val_acc_eval_mode=0.375, expected_latency_ms=None, decisiveness=decisiveness(alphas, space))


def test_uniform_alphas_are_undecided() -> None:
    d = decisiveness(torch.full((6, 12), 1e-3), "cdnet")
    assert [x.entropy_fraction for x in d.layers] == pytest.approx([1.0] * 6, abs=1e-12)
    assert [x.margin for x in d.layers] == [0.0] * 6
    assert [(x.candidate, x.runner_up) for x in d.layers] == [("3-5-1", "3-7-1")] * 6  # the tie-break: lowest
    assert d.undecided and "barely moved" in d.warning()


def test_entropy_fraction_and_margin_by_hand() -> None:
    alphas = torch.zeros(6, 6)
    alphas[:, 4] = 2.0  # cnet: candidate 5-9 chosen
    alphas[:, 1] = 1.0  # runner-up 3-7
    alphas[5] = torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.1])
    d = decisiveness(alphas, "cnet")
    p = torch.softmax(alphas.double(), -1)
    for layer, x in enumerate(d.layers):
        first, second = torch.sort(alphas[layer], descending=True, stable=True).indices[:2].tolist()
        assert (x.candidate, x.runner_up) == (candidates("cnet")[first].tostr("cnet"),
                                             candidates("cnet")[second].tostr("cnet"))
        assert x.margin == pytest.approx(float(p[layer, first] - p[layer, second]), abs=1e-12)
        entropy = float(-(p[layer] * p[layer].log()).sum())
        assert x.entropy_fraction == pytest.approx(entropy / math.log(6), abs=1e-12)
    assert d.layers[0].candidate == "5-9" and d.layers[0].runner_up == "3-7"
    assert d.layers[5].candidate == "7-9" and d.layers[5].runner_up == "3-5"
    assert d.mean_margin == pytest.approx(sum(x.margin for x in d.layers) / 6)
    assert d.mean_entropy_fraction < UNDECIDED_ENTROPY_FRACTION and not d.undecided and d.warning() is None


def test_threshold_is_on_the_mean_entropy_fraction() -> None:
    # all layers equal, softmax entropy just below / above 0.98 ln 12
    def at(scale: float) -> float:
        a = torch.zeros(6, 12)
        a[:, 0] = scale
        return decisiveness(a, "cdnet").mean_entropy_fraction

    lo, hi = 0.0, 5.0  # bisect the alpha offset that gives exactly 0.98
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if at(mid) > UNDECIDED_ENTROPY_FRACTION else (lo, mid)
    for scale, undecided in ((lo * 0.99, True), (hi * 1.01, False)):
        a = torch.zeros(6, 12)
        a[:, 0] = scale
        assert decisiveness(a, "cdnet").undecided is undecided


def test_report_stdout_and_log_of_an_undecided_search(tmp_path: Path, caplog) -> None:
    result = _result(torch.full((6, 12), 1e-3))
    lines = summary_lines(result)
    assert lines[0].startswith("derived genotype: cdnet:3-5-1,")
    assert lines[1].startswith("WARNING: the alphas barely moved")  # right beside the genotype
    assert sum("layer" in ln and "ln n, margin" in ln for ln in lines) == 6
    assert "supernet val acc (eval mode, one pass over the validation split): 0.375" in lines[-1]
    assert "val acc (train mode, mean over the last epoch's alpha steps): 0.125" in lines[-1]

    with caplog.at_level(logging.WARNING, logger="hwnas.search.report"):
        paths = write_outputs(tmp_path, SearchConfig(), result, None, "test data", 1.0)
    assert any("barely moved" in r.getMessage() for r in caplog.records)
    report = json.loads(paths["report_json"].read_text())
    final = report["final"]
    assert final["val_acc_eval_mode"] == 0.375 and final["val_acc_train_mode"] == 0.125
    assert "val_acc" not in final and "val_acc" not in report["epochs"][0]
    assert final["decisiveness"]["undecided"] and final["warning"].startswith("WARNING")
    assert len(final["decisiveness"]["layers"]) == 6
    assert final["decisiveness"]["layers"][0]["entropy_fraction"] == pytest.approx(1.0)
    md = paths["report_md"].read_text()
    genotype_at = md.index("## Derived genotype")
    assert genotype_at < md.index("**WARNING: the alphas barely moved") < md.index("## Top-k")
    assert "supernet val acc, eval mode" in md and "val acc, train mode" in md
    assert "| mean | | | | | 0.0000 | 1.0000 |" in md


def test_decided_search_has_no_warning() -> None:
    alphas = torch.zeros(6, 12)
    alphas[:, 3] = 3.0
    result = _result(alphas)
    lines = summary_lines(result)
    assert not any("WARNING" in ln for ln in lines)
    report = build_report(SearchConfig(), result, None, "test data", 1.0)
    assert report["final"]["warning"] is None and not report["final"]["decisiveness"]["undecided"]
    assert "WARNING" not in render_markdown(report)


def test_sweep_table_names_both_accuracies() -> None:
    rows = [{"latency_weight": 0.0, "genotype": "cdnet:3-5-1,3-5-1,3-5-1,3-5-1,3-5-1,3-5-1",
             "predicted_latency_ms": 10.0, "val_acc_eval_mode": 0.5, "val_acc_train_mode": 0.25,
             "alpha_entropy_fraction": 0.99, "alpha_margin": 0.0, "undecided": True, "pareto": True}]
    md = render_sweep(rows, "rtx2080")
    assert "supernet val acc (eval mode)" in md and "val acc (train mode)" in md
    assert "| 0.500 | 0.250 | 0.9900 (undecided) | yes |" in md


def test_a_genotype_is_profiled_once_per_process_with_the_figures_of_a_fresh_profile(monkeypatch) -> None:
    import hwnas
    from hwnas import profile
    from hwnas.search import report
    from hwnas.space.genotype import Genotype

    monkeypatch.undo()  # the real describe_genotype
    report._profile.cache_clear()
    calls = []

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    real = profile.profile_model
    monkeypatch.setattr(profile, "profile_model", counted)
    geno = Genotype.fromstr("cdnet:3-5-1,3-7-2,5-9-1,3-5-1,7-9-2,3-5-1")
    first = report.describe_genotype(geno, None)
    assert report.describe_genotype(geno, None) == first and len(calls) == 1  # the second one from the cache
    fresh = real(hwnas.create_model("cdnet", genotype=geno, width_mult=1.0, num_classes=751), input_size=(256, 128),
                 scope="backbone")
    assert (first["params_m"], first["flops_m"]) == (round(fresh.params_m, 4), round(fresh.flops_m, 2))
    other = Genotype.fromstr("cdnet:3-5-1,3-5-1,3-5-1,3-5-1,3-5-1,3-5-1")
    assert report.describe_genotype(other, None)["flops_m"] < first["flops_m"] and len(calls) == 2
