"""The commands' visual results and progress output: train/evaluate/search figures, logs and event files, rows
printed as they are measured, --threads and --latency-table on the timing/report commands, en-dash empty cells."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hwnas.viz._figure import MATCH_RGB, MISMATCH_RGB
from hwnas.viz.ranks import _BORDER

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _data_args(tmp_path: Path) -> list[str]:
    return ["--synthetic", "--synthetic-dir", str(tmp_path / "syn"), "--synthetic-ids", "3",
            "--synthetic-images-per-id", "4", "--synthetic-cameras", "2"]


def _border_pixels(path: Path) -> int:
    img = np.asarray(Image.open(path).convert("RGB"))
    return sum(int((img == np.array(rgb, np.uint8)).all(axis=-1).sum()) for rgb in (MATCH_RGB, MISMATCH_RGB))


@pytest.mark.slow
def test_train_then_evaluate_write_their_figures(tmp_path, capsys):
    from hwnas import evaluate, train

    out = tmp_path / "run"
    assert train.main(["--model", "cdnet", "-o", "width_mult=0.25", *_data_args(tmp_path), "--epochs", "2",
                       "--batch-size", "8", "--input-size", "32x16", "--eval-every", "1", "--output", str(out),
                       "--no-progress", "--device", "cpu"]) == 0
    log = (out / "train.log").read_text()
    assert "epoch 1/2: loss" in log and "epoch 2/2: loss" in log and "rank-1" in log
    assert Image.open(out / "training_curves.png").size == (1400, 420)
    if HAS_TENSORBOARD:
        assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    capsys.readouterr()
    assert evaluate.main(["--checkpoint", str(out / "last.pt"), *_data_args(tmp_path), "--device", "cpu",
                          "--visualize-ranks", "2", "--topk", "3"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "eval.json").read_text())
    assert len(result["cmc"]) == 50 and result["cmc"][:20] == result["cmc_top20"]
    assert "eval-cmc.png" in printed and "eval-ranks-01.png" in printed
    assert Image.open(out / "eval-cmc.png").size == (640, 440)
    frame = (128 + 2 * _BORDER) * (64 + 2 * _BORDER) - 128 * 64
    assert _border_pixels(out / "eval-ranks-01.png") == 2 * 3 * frame  # 2 queries x top-3, each green or red


def test_tensorboard_on_without_the_package_fails_before_any_work(tmp_path, capsys, monkeypatch):
    from hwnas import train
    from hwnas.viz import tensorboard

    monkeypatch.setattr(tensorboard, "available", lambda: False)
    out = tmp_path / "run"
    assert train.main(["--model", "cdnet", *_data_args(tmp_path), "--output", str(out), "--tensorboard", "on"]) == 2
    assert "hwnas[tensorboard]" in capsys.readouterr().err and not (tmp_path / "syn").exists()


def test_search_writes_event_files_with_alphas(tmp_path):
    from hwnas.search._data import SearchData, TensorBatches
    from hwnas.search.config import SearchConfig
    from hwnas.search.runner import run_search

    g = torch.Generator().manual_seed(0)
    pids = torch.arange(4).repeat_interleave(8)
    images = torch.randn(32, 3, 32, 32, generator=g) + pids.view(-1, 1, 1, 1) * 0.3
    data = SearchData(TensorBatches(images, pids, 8, 4, seed=0, stream=0),
                      TensorBatches(images, pids, 8, 4, seed=0, stream=1), 4, "tiny")
    config = SearchConfig(width_mult=0.125, image_size=(32, 32), epochs=2, ids_per_batch=2, images_per_id=4,
                          alpha_milestones=(1,))
    _, paths = run_search(config, data, tmp_path, progress=False, tensorboard=HAS_TENSORBOARD)
    assert Image.open(paths["alphas_png"]).size == (1500, 750)
    if not HAS_TENSORBOARD:
        pytest.skip("the tensorboard package is not installed (pip install 'hwnas[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train_loss", "alpha_entropy", "alpha/layer1/3-5-1", "alpha/layer6/7-9-2"} <= tags
    assert [e.step for e in events.Scalars("alpha/layer1/3-5-1")] == [1, 2]


def test_flops_table_rows_are_printed_as_they_are_measured(monkeypatch):
    from hwnas.report import flops
    from hwnas.report.paper_tables import table5_rows

    events: list[str] = []

    def measured(row):
        events.append(f"measure {row.model}")
        return {"model": row.model, "genotype": None, "width_mult": None, "input_size": [256, 128],
                "scope": "inference", "params_scope": "inference", "params_m": 1.0, "flops_m": 2.0,
                "paper_params_m": 1.0, "paper_flops_m": 2.0, "paper_printed": ["1.0", "2.0"], "params_match": True,
                "flops_match": True, "note": ""}

    monkeypatch.setattr(flops, "table_row", measured)
    rows = flops.stream_table(table5_rows(["osnet", "gdas"]), lambda line: events.append(line))
    assert len(rows) == 2
    assert events[0].startswith("model") and events[1].startswith("-")
    assert events[2] == "measure osnet" and events[3].startswith("osnet")  # the row before the next measurement
    assert events[4] == "measure gdas" and events[5].startswith("gdas")
    assert len({len(line) for line in events if not line.startswith("measure")}) == 1  # aligned columns


def test_report_model_latency_table_at_its_setting(tmp_path, capsys):
    from hwnas.latency import load_table
    from hwnas.latency.io import TABLES_DIR
    from hwnas.report.__main__ import main as report_main
    from hwnas.space.presets import resolve_genotype

    table = load_table("cpu")  # shipped, measured at 128x64
    h, w = table.data.setting.resolution
    assert (h, w) != (256, 128)
    expected = table.genotype_latency_ms(resolve_genotype("cdnet-top2", "cdnet"))
    assert report_main(["model", "--genotype", "cdnet-top2", "--no-measure", "--json"]) == 0
    shipped = {p["table"]: p for p in json.loads(capsys.readouterr().out)["predicted"]}
    assert shipped["cpu"]["latency_ms"] is None  # a shipped table of another input size says n/a
    path = tmp_path / "mine.json"
    path.write_text((TABLES_DIR / "cpu.json").read_text())
    assert report_main(["model", "--genotype", "cdnet-top2", "--no-measure", "--json", "--latency-table", "cpu",
                        "--latency-table", str(path)]) == 0
    predicted = json.loads(capsys.readouterr().out)["predicted"]
    by_table = {p["table"]: p for p in predicted}
    assert [p["table"] for p in predicted].count("cpu") == 1
    for name in ("cpu", str(path)):
        assert by_table[name]["latency_ms"] == pytest.approx(expected)
        assert f"at the table's setting {h}x{w}" in by_table[name]["note"]
    assert report_main(["model", "--no-measure", "--latency-table", "no-such-table"]) == 2
    assert "no-such-table" in capsys.readouterr().err


def test_synthetic_generation_shows_progress(tmp_path, capsys):
    from hwnas.data.__main__ import main as data_main

    assert data_main(["synthetic", "--output", str(tmp_path / "d"), "--num-ids", "2", "--images-per-id", "3"]) == 0
    assert "synthetic images" in capsys.readouterr().err


def test_benchmark_empty_cells_are_en_dashes():
    from benchmarks._device import EMPTY, ratio_cell

    assert EMPTY == "\u2013"
    assert ratio_cell(None, 2.0) == EMPTY and ratio_cell(float("nan"), 2.0) == EMPTY
    assert ratio_cell(3.0, 0.0) == EMPTY and ratio_cell(3.0, 2.0) == "1.50x"


def test_benchmark_clis_take_threads(capsys):
    import argparse

    from benchmarks import inference, search_step
    from benchmarks._device import add_threads_argument, apply_threads

    for module in (inference, search_step):
        try:
            code = module.main(["--help"])  # behind the error boundary --help returns 0
        except SystemExit as e:  # a bare argparse CLI exits
            code = e.code
        assert code == 0 and "--threads N" in capsys.readouterr().out
    p = argparse.ArgumentParser()
    add_threads_argument(p)
    before = torch.get_num_threads()
    apply_threads(p.parse_args(["--threads", "1"]).threads)
    assert torch.get_num_threads() == 1
    torch.set_num_threads(before)
    with pytest.raises(SystemExit, match="--threads"):
        apply_threads(0)
