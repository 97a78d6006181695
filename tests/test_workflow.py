"""The ReID user's loop with ``hwnas ...`` commands alone (docs/workflow.md), each step on tiny data:
search and train on a custom Market-format folder (from a YAML config), resume from the folder alone, evaluate,
extract features of a plain folder, export to ONNX, fine-tune from given weights, register a dataset.

The custom folder is written by the synthetic generator and its SYNTHETIC.json marker removed, so it is what a
user's own data looks like to hwnas: neither the real Market-1501 nor marked synthetic.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hwnas
from hwnas.cli import main as hwnas_main
from hwnas.data import DATASETS, MarketFormat, build_dataset, list_datasets, register_dataset
from hwnas.data.synthetic import generate_synthetic_market
from hwnas.errors import CheckpointError, DatasetError, UsageError
from hwnas.training import load_checkpoint, load_weights, save_checkpoint

TRAIN_YAML = """\
model: cdnet
model_options: {{width_mult: 0.25}}
data:
  dataset: market-format
  root: {root}
train:
  epochs: 2
  batch_size: 8
  height: 32
  width: 16
  eval_every: 0
  test_batch_size: 16
  lr: 0.05
"""


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def custom_folder(root: Path, num_ids: int = 4, seed: int = 3) -> Path:
    out = generate_synthetic_market(root, num_ids=num_ids, images_per_id=8, num_cameras=2, image_size=(32, 16),
                                    seed=seed)
    (out / "SYNTHETIC.json").unlink()
    return out


@pytest.fixture(scope="module")
def mine(tmp_path_factory) -> Path:
    return custom_folder(tmp_path_factory.mktemp("data") / "mine")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, mine) -> Path:
    """``hwnas train --config train.yaml`` (plus a flag and an override) on the custom folder."""
    work = tmp_path_factory.mktemp("train")
    config = work / "train.yaml"
    config.write_text(TRAIN_YAML.format(root=mine))
    out = work / "run"
    argv = ["train", "--config", str(config), "--output", str(out), "--seed", "3", "--no-progress", "--device",
            "cpu", "--threads", "1", "train.lr=0.02"]
    assert hwnas_main(argv) == 0
    return out


def test_the_plain_market1501_reader_refuses_a_custom_folder_and_market_format_reads_it(mine, capsys):
    with pytest.raises(DatasetError, match="--dataset market-format"):
        build_dataset("market1501", mine)
    ds = build_dataset("market-format", mine)
    assert ds.num_train_pids == 4 and ds.query and ds.gallery
    assert "market-format" in list_datasets()
    assert hwnas_main(["data", "info", "--data-root", str(mine), "--dataset", "market-format"]) == 0
    assert "train" in capsys.readouterr().out


def test_train_from_yaml_writes_the_resolved_config(trained, capsys):
    import yaml

    saved = yaml.safe_load((trained / "config.yaml").read_text())
    assert saved["model"] == "cdnet" and saved["data"]["dataset"] == "market-format"
    assert saved["train"]["epochs"] == 2 and saved["train"]["height"] == 32  # from the file
    assert saved["train"]["seed"] == 3  # the flag
    assert saved["train"]["lr"] == 0.02  # the override beats the file's 0.05
    assert saved["train"]["milestones"] == [2]  # scaled to 2 epochs: the file set epochs only
    assert load_checkpoint(trained / "last.pt")["epoch"] == 2


def test_resume_from_the_folder_alone(trained, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    ckpt = load_checkpoint(run / "last.pt")
    save_checkpoint(run / "last.pt", {**ckpt, "epoch": 1, "epoch_batches": ckpt["epoch_batches"][:1]})  # as if
    # stopped after epoch 1 (weights aside)
    assert hwnas_main(["train", "--resume", "--output", str(run), "--no-progress", "--device", "cpu"]) == 0
    assert "2 epochs from epoch 2" in capsys.readouterr().out
    assert load_checkpoint(run / "last.pt")["epoch"] == 2
    assert hwnas_main(["train", "--resume", "--output", str(run), "--device", "cpu"]) == 0
    assert "already trained all 2 epochs" in capsys.readouterr().out
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]
    assert hwnas_main(["train", "--resume", "--output", str(run), "--lr", "0.5"]) == 2
    err = capsys.readouterr().err
    assert "train.lr 0.02 -> 0.5 (--lr)" in err and str(run / "config.yaml") in err


def test_evaluate_on_the_runs_data_with_a_config_override(trained, capsys):
    assert hwnas_main(["evaluate", "--checkpoint", str(trained / "last.pt"), "--device", "cpu", "eval.flip=true"]) == 0
    out = capsys.readouterr().out
    assert "from" in out and "config.yaml" in out and "rank-1" in out
    result = json.loads((trained / "eval-flip.json").read_text())
    assert result["dataset"] == "market-format" and result["flip"] is True and 0 <= result["mAP"] <= 1
    assert (trained / "eval-flip.config.yaml").is_file()


def test_extract_features_of_a_plain_folder(trained, tmp_path, mine, capsys):
    photos = tmp_path / "photos" / "day1"
    photos.mkdir(parents=True)
    for i, src in enumerate(sorted((mine / "query").iterdir())[:5]):
        Image.open(src).save(photos / f"cam{i % 2}-{i}.png")  # any names, no identity labels
    (photos / "notes.txt").write_text("not an image")
    out = tmp_path / "feats.npz"
    argv = ["extract", "--checkpoint", str(trained / "last.pt"), "--images", str(tmp_path / "photos" / "**" / "*"),
            "--output", str(out), "--batch-size", "2", "--device", "cpu", "--no-progress"]
    assert hwnas_main(argv) == 0
    with np.load(out) as f:  # no pickle needed
        features, files = f["features"], list(f["files"])
        assert str(f["model"]) == "cdnet" and list(f["input_size"]) == [32, 16]
    assert features.shape == (5, 384) and features.dtype == np.float32 and np.isfinite(features).all()
    assert files == sorted(str(p) for p in photos.glob("*.png"))
    model = hwnas.load_checkpoint_model(trained / "last.pt")
    from hwnas.data.loaders import read_image
    from hwnas.data.transforms import build_transforms

    x = build_transforms(32, 16, train=False)(read_image(files[0]))[None]
    with torch.no_grad():
        # float32 rounding scales with the features (a 2-epoch model's reach 1e5)
        np.testing.assert_allclose(model(x)[0].numpy(), features[0], rtol=1e-4, atol=1e-5 * np.abs(features).max())
    assert hwnas_main(argv) == 2 and "output file exists" in capsys.readouterr().err
    baseline = tmp_path / "random.pt"
    assert hwnas_main(["extract", "--model", "osnet", "-o", "width_mult=0.25", "--input-size", "64x32", "--images",
                       str(photos), "--output", str(baseline), "--no-progress", "--device", "cpu"]) == 0
    payload = torch.load(baseline, weights_only=True)
    assert payload["features"].shape == (5, 512) and payload["source"] == "random weights (seed 0)"
    assert hwnas_main(["extract", "--model", "osnet", "--images", str(tmp_path / "none" / "*.jpg"),
                       "--output", str(tmp_path / "x.npz")]) == 2
    assert "no image matches" in capsys.readouterr().err


def test_export_onnx_with_fused_bn_and_a_dynamic_batch(trained, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    path = tmp_path / "cdnet.onnx"
    assert hwnas_main(["export", "--checkpoint", str(trained / "last.pt"), "--format", "onnx", "--fuse-bn",
                       "--output", str(path)]) == 0
    assert "parity vs eager PyTorch" in capsys.readouterr().out
    graph = onnx.load(path).graph
    dims = [d.dim_value or d.dim_param for d in graph.output[0].type.tensor_type.shape.dim]
    assert graph.output[0].name == "features" and dims == ["batch", 384]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = torch.randn(3, 3, 32, 16)
    got = session.run(["features"], {"images": images.numpy()})[0]
    with torch.no_grad():
        want = hwnas.load_checkpoint_model(trained / "last.pt")(images).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4 * max(1.0, np.abs(want).max()))
    assert not list(tmp_path.glob(".*.tmp*"))
    assert hwnas_main(["export", "--model", "osnet", "--fuse-bn", "--output", str(tmp_path / "o.onnx")]) == 2
    assert "--fuse-bn" in capsys.readouterr().err


def test_finetune_from_given_weights(trained, tmp_path, capsys):
    other = custom_folder(tmp_path / "other", num_ids=3, seed=5)  # 3 identities: the classifier changes size
    out = tmp_path / "ft"
    assert hwnas_main(["train", "--model", "cdnet", "-o", "width_mult=0.25", "--data-root", str(other), "--dataset",
                       "market-format", "--load-weights", str(trained / "last.pt"), "--epochs", "1", "--batch-size",
                       "8", "--input-size", "32x16", "--eval-every", "0", "--output", str(out), "--no-progress",
                       "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "global_head.classifier re-initialised: checkpoint (4, 512), model (3, 512)" in printed
    assert "loaded weights from" in printed
    assert hwnas_main(["train", "--model", "cdnet", "--data-root", str(other), "--dataset", "market-format",
                       "--load-weights", str(trained / "last.pt"), "--input-size", "32x16", "--output",
                       str(tmp_path / "bad")]) == 2  # width 1.0 vs the checkpoint's 0.25
    assert "weights do not fit cdnet" in capsys.readouterr().err


def test_load_weights_copies_all_but_a_resized_classifier(trained, tmp_path):
    source = hwnas.load_checkpoint_model(trained / "last.pt")
    model = hwnas.create_model("cdnet", width_mult=0.25, num_classes=7)
    notes = load_weights(model, trained / "last.pt")
    assert len(notes) == 2 and all("classifier" in n for n in notes)  # global and local classifiers
    for key, value in source.state_dict().items():
        if ".classifier." not in key:
            assert torch.equal(model.state_dict()[key], value), key
    torch.save(source.state_dict(), tmp_path / "plain.pth")  # a plain state dict works too
    assert load_weights(hwnas.create_model("cdnet", width_mult=0.25, num_classes=4), tmp_path / "plain.pth") == []
    for bad, what in ((hwnas.create_model("osnet", width_mult=0.25, num_classes=4), "weights do not fit osnet"),):
        with pytest.raises(CheckpointError, match=what):
            load_weights(bad, trained / "last.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot be loaded"):
        load_weights(model, tmp_path / "junk.pt")


@pytest.mark.slow
def test_search_on_a_custom_folder_then_resume_from_the_folder(mine, tmp_path, capsys):
    out = tmp_path / "search"
    argv = ["search", "--data-root", str(mine), "--dataset", "market-format", "--space", "cnet", "--epochs", "1",
            "--batch-size", "8", "--width-mult", "0.0625", "--input-size", "32x32", "--output", str(out),
            "--no-progress", "--threads", "1", "search.val_per_id=2", "search.checkpoint_every=0"]
    assert hwnas_main(argv) == 0
    assert "derived genotype: cnet:" in capsys.readouterr().out
    import yaml

    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["data"] == {"dataset": "market-format", "root": str(mine), "check_counts": True}
    assert saved["search"]["val_per_id"] == 2 and saved["search"]["image_size"] == [32, 32]
    assert hwnas_main(["search", "--resume", "--output", str(out), "--no-progress", "--threads", "1"]) == 0
    assert "derived genotype: cnet:" in capsys.readouterr().out
    assert hwnas_main(["search", "--resume", "--output", str(out), "--topk", "1"]) == 2
    assert "search.topk 2 -> 1 (--topk)" in capsys.readouterr().err
    # a hand-edited config.yaml that no longer matches the checkpoint is refused before anything is written
    edited = (out / "config.yaml").read_text().replace("topk: 2", "topk: 3  # edited by hand")
    assert edited != (out / "config.yaml").read_text()
    (out / "config.yaml").write_text(edited)
    import logging

    for handler in logging.getLogger().handlers[:]:  # the earlier runs' handlers (one process here, not in a shell)
        logging.getLogger().removeHandler(handler)
        handler.close()
    log = (out / "search.log").read_bytes()
    assert hwnas_main(["search", "--resume", "--output", str(out), "--no-progress", "--threads", "1"]) == 2
    assert "topk 2 -> 3" in capsys.readouterr().err
    assert (out / "config.yaml").read_text() == edited and (out / "search.log").read_bytes() == log
    # the same settings on other data (another copy of the generator, same ids and names) is refused as well,
    # and a refusal later on (the checkpoint's weights do not fit other data) never rewrites config.yaml
    other = custom_folder(tmp_path / "other", seed=4)
    edited = (out / "config.yaml").read_text().replace("topk: 3  # edited by hand", "topk: 2").replace(
        str(mine), str(other))
    (out / "config.yaml").write_text(edited)
    assert hwnas_main(["search", "--resume", "--output", str(out), "--no-progress", "--threads", "1"]) == 2
    assert "error: data differ from the checkpoint's run (data market-format" in capsys.readouterr().err
    assert (out / "config.yaml").read_text() == edited and (out / "search.log").read_bytes() == log
    edited = edited.replace(str(other), str(mine)) + "# a note kept across a resume\n"
    (out / "config.yaml").write_text(edited)
    assert hwnas_main(["search", "--resume", "--output", str(out), "--no-progress", "--threads", "1"]) == 0
    assert (out / "config.yaml").read_text() == edited  # a resume keeps the config.yaml it read
    # a value the user did not type is named by its key and the file it came from, not by a flag
    for old, new, named in ((str(mine), "/no/such/folder", "data.root /no/such/folder (in "),
                            ("latency_table: null", "latency_table: nosuch", "latency_table (in ")):
        (out / "config.yaml").write_text(edited.replace(old, new))
        assert hwnas_main(["search", "--resume", "--output", str(out), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert named in err and str(out / "config.yaml") in err and "--data-root" not in err, err


def test_register_a_dataset_for_every_command(mine, tmp_path):
    class Renamed(MarketFormat):
        """A user's reader (here: the market-format layout under another name)."""

        name = "my-cameras"

    try:
        register_dataset("my-cameras", Renamed)
        assert "my-cameras" in list_datasets()
        assert build_dataset("my-cameras", mine).num_train_pids == 4
        from hwnas.train import build_parser

        assert "my-cameras" in build_parser().format_help()  # --dataset lists registered names
        with pytest.raises(UsageError, match="already registered"):
            register_dataset("my-cameras", MarketFormat)
        with pytest.raises(UsageError, match="bad dataset name"):
            register_dataset("Bad Name", MarketFormat)
    finally:
        DATASETS.pop("my-cameras", None)
    with pytest.raises(UsageError, match="unknown dataset 'my-cameras'"):
        build_dataset("my-cameras", mine)
