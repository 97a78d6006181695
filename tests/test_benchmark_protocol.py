"""The Table 5 timing protocol (benchmarks.inference_time) on a tiny generated Market-1501 folder."""
from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image
from torch import nn

from benchmarks import inference_time
from benchmarks._protocol import ProtocolConfig, benchmark_model, rank_step, select_test_items
from benchmarks._report import PAPER_TABLE5, Prediction, aligned_table, build_rows
from hwnas.data import Market1501, generate_synthetic_market


@pytest.fixture(scope="module")
def tiny_market(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("market")
    generate_synthetic_market(root, num_ids=3, images_per_id=5, image_size=(32, 16), seed=1)
    return root


class CountingModel(nn.Module):
    """Records the batch shapes it sees; features = per-channel means (so ranking has signal)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(3))
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        return x.mean(dim=(2, 3)) * self.scale


def test_select_test_items_keeps_proportion() -> None:
    query = [(f"q{i}", i, 0) for i in range(30)]
    gallery = [(f"g{i}", i, 1) for i in range(170)]
    q, g = select_test_items(query, gallery, 20)
    assert (len(q), len(g)) == (3, 17)
    assert q == [query[0], query[10], query[20]] and g[1] == gallery[10]
    assert select_test_items(query, gallery, None) == (query, gallery)
    assert select_test_items(query, gallery, 10_000) == (query, gallery)
    with pytest.raises(ValueError, match="num_images"):
        select_test_items(query, gallery, 1)


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="dtype"):
        ProtocolConfig(dtype="float8")
    with pytest.raises(ValueError, match="backend"):
        ProtocolConfig(backend="tvm")
    with pytest.raises(ValueError, match="batch_size"):
        ProtocolConfig(batch_size=0)


def test_every_image_goes_through_the_loader(tiny_market) -> None:
    data = Market1501(tiny_market)
    cfg = ProtocolConfig(batch_size=4, workers=1, runs=2, warmup=1, height=24, width=12)
    model = CountingModel()
    result = benchmark_model("counting", data.query, data.gallery, cfg, model=model)
    n = len(data.query) + len(data.gallery)
    timed = model.shapes[-2 * math.ceil(n / 4):]
    assert sum(s[0] for s in timed) == 2 * n and all(s[1:] == (3, 24, 12) for s in timed)
    assert len(result.runs) == 2 and result.num_images == n
    for run in result.runs:
        parts = run.data + run.h2d + run.forward + run.rank
        assert min(run.data, run.h2d, run.forward, run.rank) >= 0 and parts <= run.total
    assert 0 <= result.rank1 <= 1 and 0 < result.mAP <= 1


def test_rank_step_finds_the_match() -> None:
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0], [1.0, 0.1], [1.0, 0.05]])
    pids = torch.tensor([1, 2, 2, 1, 1])
    cams = torch.tensor([0, 0, 1, 1, 0])  # gallery item 4 shares query 0's camera: excluded
    scores = rank_step(feats, pids, cams, num_query=2)
    assert scores["cmc"][0] == 1.0 and scores["mAP"] == pytest.approx(1.0)


def test_ratios_and_table() -> None:
    from benchmarks._protocol import ModelResult, RunTimes

    def result(name: str, total: float) -> ModelResult:
        run = RunTimes(total, 0.1 * total, 0.0, 0.8 * total, 0.05 * total)
        return ModelResult(name, 2, 8, (run, run), 1.0, 1.0, 1.0, 100.0)

    preds = {"cdnet": Prediction(2.0, "t"), "osnet": Prediction(None, "n/a")}
    rows = build_rows([result("osnet", 3.0), result("cdnet", 2.0)], preds, "cdnet")
    assert rows[0]["ratio_to_reference"]["measured"] == pytest.approx(1.5)
    assert rows[0]["ratio_to_reference"]["paper"] == pytest.approx(156.0 / 142.4)
    assert rows[0]["ratio_to_reference"]["predicted"] is None and rows[1]["ratio_to_reference"]["predicted"] == 1.0
    assert rows[0]["total_std_s"] == 0.0
    text = aligned_table(rows)
    assert "\u2013" in text and "1.500" in text and len({len(line) for line in text.splitlines()}) == 1
    assert "nan" not in text.lower() and "n/a" not in text  # an empty cell is an en dash


def test_cli_writes_all_outputs(tiny_market, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    argv = ["--data-root", str(tiny_market), "--models", "cdnet", "--runs", "1", "--warmup", "1", "--workers", "0",
            "--input-size", "32x16", "--batch-size", "8", "--device", "cpu", "--output", str(out)]
    assert inference_time.main(argv) == 0
    payload = json.loads((out / "results.json").read_text())
    (row,) = payload["results"]
    data = Market1501(tiny_market)
    assert row["num_images"] == len(data.query) + len(data.gallery)
    assert row["paper"]["time_s"] == PAPER_TABLE5["cdnet"].time_s and row["ratio_to_reference"]["measured"] == 1.0
    assert row["params_m"] == pytest.approx(1.7966, abs=1e-4)
    assert row["total_mean_s"] > 0 and len(row["runs_s"]) == 1
    env = payload["environment"]
    assert env["device_type"] == "cpu" and env["software"]["torch"] == torch.__version__
    assert env["command"].endswith(" ".join(argv))
    md = (out / "results.md").read_text()
    assert "| cdnet |" in md and env["device"] in md and "142.4" in md
    with Image.open(out / "inference_time.png") as img:
        assert img.size[0] > 100
    assert "cdnet" in capsys.readouterr().out


def test_cli_rejects_unknown_model(tiny_market, capsys) -> None:
    assert inference_time.main(["--data-root", str(tiny_market), "--models", "cdnet,nope"]) == 2
    assert "error: unknown model(s) nope, --models, expected" in capsys.readouterr().err


def test_default_dataset_is_generated_once(tmp_path, monkeypatch) -> None:
    calls = []

    def fake_generate(out, **kw):
        calls.append(kw)
        return generate_synthetic_market(out, num_ids=2, images_per_id=3, image_size=(16, 8))

    monkeypatch.setattr(inference_time, "generate_synthetic_market", fake_generate)
    _, source = inference_time.load_test_set(None, tmp_path / "synthetic")
    inference_time.load_test_set(None, tmp_path / "synthetic")
    assert len(calls) == 1 and calls[0]["market_test_sizes"] is True and "synthetic" in source


def test_unavailable_backend_fails_clearly(tiny_market) -> None:
    from hwnas import ops

    ok, _ = ops.available_backends().get("triton", (False, ""))
    if ok:
        pytest.skip("the triton ops backend is available here")
    data = Market1501(tiny_market)
    cfg = ProtocolConfig(backend="triton", runs=1, warmup=0, workers=0, height=16, width=8)
    with pytest.raises((RuntimeError, ValueError), match="triton"):
        benchmark_model("counting", data.query, data.gallery, cfg, model=CountingModel())
