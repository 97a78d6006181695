"""Training library and CLIs: config, exact resume, checkpoints, and train -> evaluate -> tsne end to end."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import hwnas
from hwnas.data.datasets import Market1501
from hwnas.data.synthetic import generate_synthetic_market
from hwnas.training import (
    CheckpointError,
    ReIDData,
    TrainConfig,
    Trainer,
    load_checkpoint,
    save_checkpoint,
    scaled_milestones,
)

TINY = {"epochs": 2, "batch_size": 8, "num_instances": 4, "height": 32, "width": 16, "eval_every": 0,
        "test_batch_size": 16, "milestones": (2,), "seed": 7}
MODEL = {"width_mult": 0.25, "num_classes": 3}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> ReIDData:
    root = generate_synthetic_market(tmp_path_factory.mktemp("d") / "m", num_ids=3, images_per_id=4, num_cameras=2,
                                     image_size=(32, 16), seed=1)
    return ReIDData.from_dataset(Market1501(root))


def test_config_defaults_are_the_papers():
    c = TrainConfig()
    assert (c.epochs, c.lr, c.momentum, c.weight_decay, c.milestones) == (350, 0.065, 0.9, 5e-4, (150, 225, 300))
    assert (c.batch_size, c.num_instances, c.height, c.width, c.margin) == (64, 4, 256, 128, 0.3)
    assert c.lr_at(149) == 0.065 and c.lr_at(150) == pytest.approx(0.0065) and c.lr_at(350) == pytest.approx(6.5e-5)
    assert TrainConfig(warmup_epochs=10).lr_at(1) == pytest.approx(0.0065)
    assert scaled_milestones(350) == (150, 225, 300) and scaled_milestones(15) == (6, 10, 13)
    assert scaled_milestones(1) == () and scaled_milestones(3) == (2, 3)  # none after the last epoch
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown training option"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="multiple of num_instances"):
        TrainConfig(batch_size=10)


def _trainer(data: ReIDData, out: Path, init_seed: int) -> Trainer:
    torch.manual_seed(init_seed)
    model = hwnas.create_model("cdnet", **MODEL)
    return Trainer(model, data, TrainConfig(**TINY), out, model_name="cdnet", model_options=MODEL, progress=False)


class _Killed(Exception):
    pass


def _kill_after_first_epoch(epoch: int, record: dict) -> None:
    if epoch == 1:
        raise _Killed


def test_resume_reproduces_an_uninterrupted_run(data, tmp_path):
    straight = _trainer(data, tmp_path / "a", init_seed=0)
    result = straight.fit()
    assert set(result) >= {"rank1", "mAP", "mINP"}

    interrupted = _trainer(data, tmp_path / "b", init_seed=0)
    with pytest.raises(_Killed):
        interrupted.fit(callbacks=[_kill_after_first_epoch])
    with open(tmp_path / "b" / "metrics.jsonl", "a") as f:  # a line logged after the checkpoint, then killed
        f.write(json.dumps({"epoch": 2, "loss": 123.0}) + "\n")
    resumed = _trainer(data, tmp_path / "b", init_seed=99)  # different init: the checkpoint must win
    assert resumed.resume() and resumed.epoch == 1
    resumed.fit()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2] and lines[1]["loss"] != 123.0
    ckpt = load_checkpoint(tmp_path / "b" / "last.pt")
    assert ckpt["epoch"] == 2 and ckpt["model_options"] == MODEL
    assert not list((tmp_path / "b").glob("*.tmp"))

    other = Trainer(hwnas.create_model("cdnet", **MODEL), data, TrainConfig(**{**TINY, "lr": 0.1}), tmp_path / "b",
                    model_name="cdnet", model_options=MODEL, progress=False)
    with pytest.raises(CheckpointError, match=r"settings differ from the checkpoint's run \(lr 0.065 -> 0.1\), "
                       r"checkpoint '.*last.pt', expected"):
        other.resume()

    # an edited progress counter or other data is refused, not trained from
    saved = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    for epoch in (-5, 0, 3, 1.5, True, "x", float("nan")):  # 0: never written (it would train the epochs again)
        save_checkpoint(tmp_path / "b" / "last.pt", {**saved, "epoch": epoch})
        with pytest.raises(CheckpointError, match=r"epoch is .*expected a whole number of epochs from 1 to the run's 2"):
            _trainer(data, tmp_path / "b", init_seed=0).resume()
    save_checkpoint(tmp_path / "b" / "last.pt", {**saved, "epoch": 1})  # in range, but 2 epochs were trained
    with pytest.raises(CheckpointError, match=r"epoch is 1 but 2 finished epoch\(s\) are recorded, .*epoch_batches"):
        _trainer(data, tmp_path / "b", init_seed=0).resume()
    for bad in ([1], [0, 1], [1, "1"], "2", [1, 10 ** 6]):
        save_checkpoint(tmp_path / "b" / "last.pt", {**saved, "epoch_batches": bad})
        shown = "'2'" if bad == "2" else ""
        with pytest.raises(CheckpointError, match=rf"{shown}.*epoch_batches, expected"):
            _trainer(data, tmp_path / "b", init_seed=0).resume()
    save_checkpoint(tmp_path / "b" / "last.pt", {**saved, "epoch": "1"})
    with pytest.raises(CheckpointError, match=r"epoch is '1', "):  # a string is shown as one
        _trainer(data, tmp_path / "b", init_seed=0).resume()
    legacy = {k: v for k, v in saved.items() if k != "epoch_batches"}  # written before it was recorded
    save_checkpoint(tmp_path / "b" / "last.pt", legacy)
    old = _trainer(data, tmp_path / "b", init_seed=0)
    assert old.resume() and old.epoch_batches is None  # not recorded in the continued run either
    groups = [{**saved["optimizer"]["param_groups"][0], "nesterov": True}]
    save_checkpoint(tmp_path / "b" / "last.pt", {**saved, "optimizer": {**saved["optimizer"], "param_groups": groups}})
    with pytest.raises(CheckpointError, match=r"param_groups\[0\].nesterov is True, the run's is False"):
        _trainer(data, tmp_path / "b", init_seed=0).resume()  # an edited optimizer never overrides the settings
    moved = ReIDData(data.train[:-1], data.query, data.gallery, data.num_classes)  # one image fewer
    save_checkpoint(tmp_path / "b" / "last.pt", saved)
    with pytest.raises(CheckpointError, match=r"data differ from the checkpoint's run \(images sha256:"):
        Trainer(hwnas.create_model("cdnet", **MODEL), moved, TrainConfig(**TINY), tmp_path / "b", model_name="cdnet",
                model_options=MODEL, progress=False).resume()
    assert _trainer(data, tmp_path / "b", init_seed=0).resume()  # the same data, moved or not, resumes


def test_checkpoint_errors(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match=r"cannot be loaded \(not a PyTorch checkpoint.*junk\.pt', expected"):
        load_checkpoint(tmp_path / "junk.pt")
    save_checkpoint(tmp_path / "partial.pt", {"model": {}, "epoch": 1})
    with pytest.raises(CheckpointError, match="lacks model_name, model_options"):
        load_checkpoint(tmp_path / "partial.pt")


def test_cli_train_evaluate_tsne(tmp_path, capsys):
    from hwnas import evaluate, train
    from hwnas.report.__main__ import main as report_main

    data_args = ["--synthetic", "--synthetic-dir", str(tmp_path / "syn"), "--synthetic-ids", "3",
                 "--synthetic-images-per-id", "4", "--synthetic-cameras", "2"]
    out = tmp_path / "run"
    assert train.main(["--model", "cdnet", "-o", "width_mult=0.25", *data_args, "--epochs", "1", "--batch-size", "8",
                       "--input-size", "32x16", "--output", str(out), "--no-progress", "--device", "cpu"]) == 0
    assert "rank-1" in capsys.readouterr().out and (out / "results.json").is_file()
    assert evaluate.main(["--checkpoint", str(out / "last.pt"), *data_args, "--flip", "--device", "cpu"]) == 0
    result = json.loads((out / "eval-flip.json").read_text())
    assert 0.0 <= result["rank1"] <= 1.0 and result["height"] == 32 and result["flip"] is True
    assert "features" in capsys.readouterr().err  # the progress bar, which --no-progress turns off (as in train)
    assert evaluate.main(["--checkpoint", str(out / "last.pt"), *data_args, "--output", str(tmp_path / "e"),
                          "--no-progress", "--device", "cpu"]) == 0
    assert "features" not in capsys.readouterr().err and (tmp_path / "e" / "eval.json").is_file()
    assert report_main(["tsne", "--checkpoint", str(out / "last.pt"), *data_args, "--num-ids", "2",
                        "--perplexity", "3", "--output", str(tmp_path / "t")]) == 0
    assert (tmp_path / "t" / "tsne-test-branch0.png").stat().st_size > 1000
    capsys.readouterr()
    # asking for more identities or a higher perplexity than the data allows draws what it can and says so
    assert report_main(["tsne", "--checkpoint", str(out / "last.pt"), *data_args, "--num-ids", "999",
                        "--perplexity", "1e9", "--output", str(tmp_path / "t")]) == 0
    err = capsys.readouterr().err
    assert "plotting all of them (--num-ids 999" in err and "perplexity 1e+09 is more than" in err
    assert evaluate.main(["--checkpoint", str(tmp_path / "nope.pt"), *data_args]) == 2
    assert "does not exist" in capsys.readouterr().err
