"""``python -m hwnas.report model``: counts, per-layer FLOPs, table predictions, measured latency, outputs."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import hwnas
from hwnas.latency import load_table, shipped_tables
from hwnas.report.__main__ import main as report_main
from hwnas.report.model_report import MeasureSpec, build_report, measure_latency, predict_on_table, to_markdown


def test_report_counts_and_per_layer_sum() -> None:
    report = build_report("cdnet", {"width_mult": 0.5}, (64, 32), measure=None)
    model = hwnas.create_model("cdnet", width_mult=0.5)
    inference = sum(p.numel() for m in model.inference_modules() for p in m.parameters())
    assert report["params_m"] == pytest.approx(inference / 1e6)
    assert report["params_total_m"] > report["params_m"]
    assert report["backbone_flops_m"] < report["flops_m"]
    layers = report["per_layer_flops_m"]
    assert layers[0]["layer"] == "backbone.stem"
    # stem conv 7x7 s2, 3 -> 32 channels at 32x16 output, counted by hand
    assert layers[0]["flops_m"] == pytest.approx(3 * 32 * 49 * 32 * 16 / 1e6)
    assert sum(row["flops_m"] for row in layers) == pytest.approx(report["flops_m"])
    assert report["measured"] is None
    md = to_markdown(report)
    assert "## Per-layer FLOPs" in md and "| backbone.stem |" in md and "Not measured" in md


@pytest.mark.skipif("rtx2080" not in shipped_tables(), reason="the rtx2080 latency table is not shipped yet")
def test_prediction_matches_the_table() -> None:
    model = hwnas.create_model("cdnet")
    p = predict_on_table(model, "rtx2080", (256, 128))
    assert p.latency_ms == pytest.approx(load_table("rtx2080").genotype_latency_ms(model.backbone.genotype))
    assert p.batch_size == load_table("rtx2080").data.setting.batch_size
    wrong_size = predict_on_table(model, "rtx2080", (64, 32))
    assert wrong_size.latency_ms is None and "64x32" in wrong_size.note
    gdas = predict_on_table(hwnas.create_model("gdas"), "rtx2080", (256, 128))
    assert gdas.latency_ms is None and "CNet/CDNet" in gdas.note


def test_prediction_from_a_missing_table_says_why(tmp_path) -> None:
    p = predict_on_table(hwnas.create_model("cdnet"), str(tmp_path / "none.json"), (256, 128))
    assert p.latency_ms is None and p.note.startswith("n/a") and "none.json" in p.note


def test_measure_latency_records_setting() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()).train()
    m = measure_latency(model, (16, 8), MeasureSpec(batch_size=2, warmup=1, repeats=3, threads=1))
    assert m["median_ms"] > 0 and m["iqr_ms"] >= 0 and m["per_image_ms"] == pytest.approx(m["median_ms"] / 2)
    assert m["batch_size"] == 2 and m["threads"] == 1 and m["software"]["torch"] == torch.__version__
    assert model.training  # restored
    with pytest.raises(ValueError, match="dtype"):
        MeasureSpec(dtype="float32")


def test_cli_writes_markdown_and_json(tmp_path, capsys) -> None:
    argv = ["model", "--model", "gdas", "--input-size", "64x32", "--no-measure", "--output", str(tmp_path)]
    assert report_main(argv) == 0
    report = json.loads((tmp_path / "model_report.json").read_text())
    assert report["model"] == "gdas" and report["input_size"] == [64, 32]
    assert report["params_as_seed_counts_m"] == pytest.approx(report["params_m"] + (1024 * 1024 + 2048) / 1e6)
    assert len(report["predicted"]) == len(shipped_tables())
    md = (tmp_path / "model_report.md").read_text()
    assert md.startswith("# Model report: gdas") and md == capsys.readouterr().out.rstrip("\n") + "\n"
