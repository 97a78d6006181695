"""The search loop: exact resume after a mid-epoch stop, the latency term's effect, the CLI's outputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import hwnas
from hwnas.latency import load_table
from hwnas.search import SearchConfig, Searcher
from hwnas.search.__main__ import main
from hwnas.search._checkpoint import CheckpointError
from hwnas.search._data import SearchData, TensorBatches

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_data(ids: int = 4, per_id: int = 8, size: int = 32) -> SearchData:
    """``ids`` identities with class-dependent images (learnable) and batches of 2 ids x 4 images."""
    g = torch.Generator().manual_seed(0)
    pids = torch.arange(ids).repeat_interleave(per_id)
    images = torch.randn(ids * per_id, 3, size, size, generator=g) * 0.5 + pids.view(-1, 1, 1, 1) * 0.3
    return SearchData(TensorBatches(images, pids, 8, 4, seed=0, stream=0),
                      TensorBatches(images, pids, 8, 4, seed=0, stream=1), ids, "tiny in-memory data")


def tiny_config(**changes) -> SearchConfig:
    base = SearchConfig(width_mult=0.125, image_size=(32, 32), epochs=2, ids_per_batch=2, images_per_id=4,
                        alpha_lr=0.05, alpha_milestones=(1,), checkpoint_every=3)
    return base.replace(**changes)


def test_resume_after_a_mid_epoch_stop_is_exact(tmp_path: Path) -> None:
    data, config = tiny_data(ids=3), tiny_config(checkpoint_every=2)
    table = load_table("rtx2080", space="cdnet")
    config = config.replace(latency_weight=0.01)
    full = Searcher(config, data, tmp_path / "full", table, progress=False).run()
    assert full is not None and len(full.history) == 2

    # 3 steps per epoch; checkpoints after steps 2 (mid-epoch), 3 (epoch end), 4 (mid-epoch); stop at 5
    assert Searcher(config, data, tmp_path / "cut", table, progress=False).run(stop_after_steps=5) is None
    ckpt = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert (ckpt["state"]["epoch"], ckpt["state"]["step"]) == (1, 1)
    resumed = Searcher(config, data, tmp_path / "cut", table, progress=False).run(resume=True)
    assert resumed is not None
    assert torch.equal(full.alphas, resumed.alphas)
    assert full.genotype == resumed.genotype
    assert [r["train_loss"] for r in full.history] == [r["train_loss"] for r in resumed.history]
    assert not torch.equal(full.alphas, torch.full_like(full.alphas, config.alpha_init))

    with pytest.raises(CheckpointError, match=r"settings differ from the checkpoint's run \(seed 0 -> 1\)"):
        Searcher(config.replace(seed=1), data, tmp_path / "cut", table, progress=False).run(resume=True)


def test_large_latency_weight_gives_a_faster_architecture(tmp_path: Path) -> None:
    data, table = tiny_data(), load_table("rtx2080", space="cdnet")
    results = {}
    for w in (0.0, 1.0):
        config = tiny_config(latency_weight=w, epochs=1, checkpoint_every=0)
        results[w] = Searcher(config, data, tmp_path / f"w{w}", table, progress=False).run()
    slow, fast = (table.genotype_latency_ms(results[w].genotype) for w in (0.0, 1.0))
    assert fast < slow
    assert results[1.0].expected_latency_ms < results[0.0].expected_latency_ms


@pytest.mark.slow
def test_cli_writes_every_output(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    argv = ["--latency-table", "rtx2080", "--latency-weight", "0.01", "--epochs", "1", "--batch-size", "16",
            "--width-mult", "0.125", "--input-size", "32x32", "--output", str(out), "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC" in printed and "SHORT" in printed and "derived genotype: cdnet:" in printed
    assert "decisiveness per layer" in printed and printed.count(" ln n, margin ") == 6 + 1  # 6 layers + mean
    assert "supernet val acc (eval mode" in printed and "val acc (train mode" in printed
    for name in ("genotype.json", "search_report.json", "search_report.md", "alphas.png", "search.log",
                 "checkpoints/last.pt"):
        assert (out / name).is_file(), name
    report = json.loads((out / "search_report.json").read_text())
    assert len(report["epochs"]) == 1 and report["epochs"][0]["latency_ms"] > 0
    final = report["final"]
    assert 0 <= final["val_acc_eval_mode"] <= 1 and 0 <= final["val_acc_train_mode"] <= 1
    assert len(final["decisiveness"]["layers"]) == 6 and 0 < final["decisiveness"]["mean_entropy_fraction"] <= 1
    assert final["predicted_latency_ms"] > 0 and final["flops_m"] > 0 and final["params_m"] > 0
    assert len(report["topk_genotypes"]) == 2
    model = hwnas.create_model("cdnet", genotype=str(out / "genotype.json"), width_mult=0.25, num_classes=2)
    assert model.backbone.genotype.tostr() == final["genotype"]
    assert main(["--resume"]) == 2  # --resume without --output is refused
    capsys.readouterr()
    config_file = out / "config.yaml"
    config_file.write_text(config_file.read_text().replace("topk: 2", "topk: 3"))
    assert main(["--resume", "--output", str(out), "--no-progress"]) == 2
    refused = capsys.readouterr()
    assert "topk 2 -> 3" in refused.err and refused.out == ""  # no synthetic-data note for a resume that stops
    # a search stopped before its first checkpoint starts again with its saved settings (it was refused both with
    # and without --resume)
    config_file.write_text(config_file.read_text().replace("topk: 3", "topk: 2"))
    (out / "checkpoints" / "last.pt").unlink()
    assert main(["--resume", "--output", str(out), "--no-progress"]) == 2  # finished: its results are not replaced
    assert "the search finished: search_report.json is there" in capsys.readouterr().err
    for name in ("search_report.json", "genotype.json", "search_report.md", "alphas.png"):
        (out / name).unlink()  # as if stopped before its first checkpoint
    saved = config_file.read_text()
    config_file.write_text("")  # emptied: it would restart on the defaults
    assert main(["--resume", "--output", str(out), "--no-progress"]) == 2
    assert "missing section(s) search, data, config file" in capsys.readouterr().err
    config_file.write_text(saved)
    assert main(["--resume", "--output", str(out), "--no-progress"]) == 0
    again = capsys.readouterr().out
    assert "no checkpoint yet" in again and "starts from epoch 1 with its saved settings" in again
    assert (out / "checkpoints" / "last.pt").is_file()
    assert json.loads((out / "search_report.json").read_text())["final"]["genotype"] == final["genotype"]
    # a checkpoint that does not fit the supernet is refused before the data line or any file is written
    for name in ("search_report.json", "genotype.json", "search_report.md", "alphas.png"):
        (out / name).unlink()
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    ckpt["model"]["stem.0.weight"] = ckpt["model"]["stem.0.weight"][:1].clone()
    torch.save(ckpt, out / "checkpoints" / "last.pt")

    def files() -> dict[str, bytes]:
        return {str(p): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".hwnas.lock"}

    kept = files()
    assert main(["--resume", "--output", str(out), "--no-progress"]) == 2
    refused = capsys.readouterr()
    assert refused.out == "" and "weight stem.0.weight has shape (1, " in refused.err
    assert files() == kept
    empty = tmp_path / "never"
    empty.mkdir()
    assert main(["--resume", "--output", str(empty), "--no-progress"]) == 2  # no saved settings: nothing to resume
    assert "nothing to resume" in capsys.readouterr().err
