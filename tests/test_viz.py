"""hwnas.viz: each figure is written, has its size, and (ranked results) the green/red borders it must have."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from hwnas.errors import ConfigError, RuntimeUnavailableError, UsageError
from hwnas.viz import tensorboard
from hwnas.viz._figure import MATCH_RGB, MISMATCH_RGB
from hwnas.viz.alphas import plot_alphas
from hwnas.viz.cmc import plot_cmc
from hwnas.viz.latency import plot_latency_validation
from hwnas.viz.ranks import _BORDER, rank_queries, select_queries, write_ranked_results
from hwnas.viz.redraw import redraw
from hwnas.viz.training import plot_training_curves, read_metrics


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _count(img: np.ndarray, rgb: tuple[int, int, int]) -> int:
    return int((img == np.array(rgb, np.uint8)).all(axis=-1).sum())


@pytest.fixture()
def gallery_world(tmp_path):
    """One query (pid 1, camera 0) and a gallery whose order by distance is known.

    Distances: a same-camera image of pid 1 (0.0, junk for this query), a pid -1 box (0.05, junk), then
    pid 1 cam 1 (0.1, match), pid 2 (0.2), pid 1 cam 2 (0.3, match), pid 0 distractor (0.4), pid 3 (0.5), pid 2 (0.6).
    """
    def image(name: str) -> str:
        path = tmp_path / name
        Image.new("RGB", (16, 32), (128, 128, 128)).save(path)
        return str(path)

    query = [(image("q.png"), 1, 0), (image("q2.png"), 9, 0)]  # pid 9 has no gallery match
    spec = [(1, 0, 0.0), (-1, 1, 0.05), (1, 1, 0.1), (2, 1, 0.2), (1, 2, 0.3), (0, 3, 0.4), (3, 1, 0.5), (2, 2, 0.6)]
    gallery = [(image(f"g{i}.png"), pid, cam) for i, (pid, cam, _) in enumerate(spec)]
    dist = torch.tensor([[d for _, _, d in spec], [0.5] * len(spec)])
    return query, gallery, dist


def test_ranked_results_exclude_junk_and_same_camera(gallery_world):
    query, gallery, dist = gallery_world
    assert select_queries(dist, query, gallery, 5) == [0]  # the query without a true match is not drawn
    (row,) = rank_queries(dist, query, gallery, [0], topk=5)
    assert [(g.pid, g.camid) for g in row.gallery] == [(1, 1), (2, 1), (1, 2), (0, 3), (3, 1)]
    assert [g.match for g in row.gallery] == [True, False, True, False, False]
    assert [g.rank for g in row.gallery] == [1, 2, 3, 4, 5]
    assert row.ap == pytest.approx((1 / 1 + 2 / 3) / 2)


def test_ranked_results_png_has_green_and_red_borders(gallery_world, tmp_path):
    query, gallery, dist = gallery_world
    paths = write_ranked_results(dist, query, gallery, tmp_path / "out", "eval", num_queries=3, topk=5,
                                 title="test", cell_size=(32, 16))
    assert [p.name for p in paths] == ["eval-ranks-01.png"]
    img = _pixels(paths[0])
    border = (32 + 2 * _BORDER) * (16 + 2 * _BORDER) - 32 * 16  # frame pixels of one image
    assert _count(img, MATCH_RGB) == 2 * border  # ranks 1 and 3: same identity
    assert _count(img, MISMATCH_RGB) == 3 * border  # ranks 2, 4, 5
    assert img.shape[1] >= 520 and (img == 128).all(axis=-1).sum() >= 6 * 32 * 16  # the 6 images, unresampled


def test_ranked_results_pages_and_stale_pages_removed(gallery_world, tmp_path):
    query, gallery, dist = gallery_world
    query = query[:1] * 3  # three identical queries with a match
    dist = dist[:1].repeat(3, 1)
    paths = write_ranked_results(dist, query, gallery, tmp_path, "eval", 3, 2, cell_size=(32, 16), per_page=2)
    assert [p.name for p in paths] == ["eval-ranks-01.png", "eval-ranks-02.png"]
    paths = write_ranked_results(dist, query, gallery, tmp_path, "eval", 1, 2, cell_size=(32, 16), per_page=2)
    assert sorted(p.name for p in tmp_path.glob("eval-ranks-*.png")) == ["eval-ranks-01.png"]


def test_cmc_curve(tmp_path):
    path = plot_cmc([0.5, 0.75, 1.0] + [1.0] * 47, tmp_path / "cmc.png", label="x", mAP=0.6, mINP=0.4)
    assert Image.open(path).size == (640, 440)
    with pytest.raises(ValueError, match="fractions"):
        plot_cmc([float("nan")], tmp_path / "bad.png")


def _metrics(n: int = 4) -> list[dict]:
    records = [{"epoch": 0, "eval": {"rank1": 0.1, "mAP": 0.1, "mINP": 0.05}}]
    for e in range(1, n + 1):
        record = {"epoch": e, "lr": 0.065 * 0.1 ** (e > 2), "loss": 5.0 / e, "ce": 3.0 / e, "triplet": 2.0 / e,
                  "acc": 0.2 * e}
        if e % 2 == 0:
            record["eval"] = {"rank1": 0.2 * e, "mAP": 0.15 * e, "mINP": 0.1 * e}
        records.append(record)
    return records


def test_training_curves_and_metrics_reader(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _metrics()))
    assert [r["epoch"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [0, 1, 2, 3, 4]
    path = plot_training_curves(_metrics(), tmp_path / "curves.png", title="t")
    assert Image.open(path).size == (1400, 420)
    (tmp_path / "bad.jsonl").write_text('{"epoch": 1}\n{oops\n')
    with pytest.raises(ConfigError, match="line 2"):
        read_metrics(tmp_path / "bad.jsonl")


def test_latency_scatter(tmp_path):
    archs = [{"genotype": f"g{i}", "predicted_ms": 10.0 + i, "measured_ms": 10.5 + 1.1 * i, "iqr_ms": 0.3}
             for i in range(5)]
    result = {"table": "t", "space": "cdnet", "device": "cpu", "mape": 0.05, "spearman": 1.0, "archs": archs,
              "context": {"batch_size": 4, "dtype": "fp32", "resolution": [128, 64], "width_mult": 1.0, "threads": 1}}
    assert Image.open(plot_latency_validation(result, tmp_path / "v.png")).size == (620, 560)


def test_alpha_plot(tmp_path):
    g = torch.Generator().manual_seed(0)
    history = [{"epoch": e, "alphas": (torch.randn(6, 12, generator=g) * 0.1).tolist()} for e in (1, 2, 3)]
    path = plot_alphas(history, "cdnet", tmp_path / "alphas.png", chosen=[0, 1, 2, 3, 4, 5])
    assert Image.open(path).size == (1500, 750)
    history = [{"epoch": 1, "alphas": [[0.0] * 6] * 6}]
    assert plot_alphas(history, "cnet", tmp_path / "cnet.png").is_file()
    with pytest.raises(ValueError, match="candidates per layer"):
        plot_alphas(history, "cdnet", tmp_path / "bad.png")


def test_redraw_a_run_folder(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _metrics()))
    (tmp_path / "eval-flip.json").write_text(json.dumps({"model": "cdnet", "epoch": 4, "dataset": "synthetic",
                                                         "flip": True, "cmc": [0.5, 1.0], "mAP": 0.5, "mINP": 0.3}))
    assert sorted(p.name for p in redraw(tmp_path)) == ["eval-flip-cmc.png", "training_curves.png"]
    with pytest.raises(UsageError, match="not a folder"):
        redraw(tmp_path / "eval-flip-cmc.png")  # a file, not a folder
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="nothing to draw"):
        redraw(empty)


def test_report_plots_command(tmp_path, capsys):
    from hwnas.report.__main__ import main as report_main

    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _metrics()))
    assert report_main(["plots", str(tmp_path)]) == 0
    assert "training_curves.png" in capsys.readouterr().out
    assert report_main(["plots", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.startswith("error: not a folder")


def test_tensorboard_scalars_and_modes(monkeypatch):
    record = {"epoch": 3, "loss": 1.5, "eval": {"rank1": 0.5, "mAP": float("nan")}, "alphas": [[1.0]],
              "genotype": "x", "flag": True, "latency_ms": None}
    assert dict(tensorboard.scalars(record)) == {"epoch": 3.0, "loss": 1.5, "eval/rank1": 0.5}
    assert tensorboard.check_mode("off") is False
    monkeypatch.setattr(tensorboard, "available", lambda: False)
    assert tensorboard.check_mode("auto") is False and "hwnas[tensorboard]" in tensorboard.absent_note()
    with pytest.raises(RuntimeUnavailableError, match="--tensorboard on"):
        tensorboard.check_mode("on")


def test_tensorboard_event_files(tmp_path):
    pytest.importorskip("tensorboard", reason="the tensorboard package is not installed (pip install "
                                              "'hwnas[tensorboard]')")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    writer = tensorboard.open_writer(True, tmp_path, extra=lambda r: {"alpha/layer1/a": 0.25})
    for epoch in (1, 2):
        writer(epoch, {"epoch": epoch, "loss": 1.0 / epoch, "eval": {"rank1": 0.1 * epoch}})
    writer.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert {"loss", "eval/rank1", "alpha/layer1/a"} <= set(events.Tags()["scalars"])
    assert [(e.step, round(e.value, 6)) for e in events.Scalars("eval/rank1")] == [(1, 0.1), (2, 0.2)]
