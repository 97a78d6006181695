"""TrainConfig.channels_last / ``--channels-last``: the NHWC memory layout is the same computation as the default
NCHW one (outputs and gradients against an fp64 reference), a run records it, and a resume may switch it."""
from __future__ import annotations

import json
import math

import pytest
import torch

import hwnas
from hwnas._io import read_json_lines
from hwnas.data.datasets import Market1501
from hwnas.data.synthetic import generate_synthetic_market
from hwnas.losses import ReIDLoss
from hwnas.training import ReIDData, TrainConfig, Trainer, load_checkpoint
from tests.test_outputs import _kill_after_first_epoch, _Killed

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

GENOTYPE = "cdnet:3-9-2,5-7-1,3-5-2,7-9-2,3-7-1,5-9-2"
MODEL = {"genotype": GENOTYPE, "width_mult": 0.25, "num_classes": 4, "neck": "fblneck"}
TINY = {"epochs": 2, "batch_size": 8, "num_instances": 4, "height": 32, "width": 16, "eval_every": 0,
        "test_batch_size": 16, "milestones": (2,), "seed": 3}


def _loss_and_grads(model: torch.nn.Module, x: torch.Tensor, pids: torch.Tensor):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(1)  # the same dropout mask in every run
    loss, _ = ReIDLoss()(model(x), pids)
    loss.backward()
    return loss.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def test_nhwc_step_matches_the_fp64_reference_as_closely_as_nchw():
    torch.manual_seed(0)
    base = hwnas.create_model("cdnet", **MODEL).train()
    x, pids = torch.randn(8, 3, 32, 16), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    ref = _loss_and_grads(base.double(), x.double(), pids)  # the same weights, the same BN batch statistics
    runs = {}
    for layout in ("nchw", "nhwc"):
        m = hwnas.create_model("cdnet", **MODEL).train()
        m.load_state_dict({k: v.float() for k, v in base.state_dict().items()})
        inp = x
        if layout == "nhwc":
            m = m.to(memory_format=torch.channels_last)
            inp = x.contiguous(memory_format=torch.channels_last)
            assert next(p for p in m.parameters() if p.dim() == 4).is_contiguous(memory_format=torch.channels_last)
        runs[layout] = _loss_and_grads(m, inp, pids)
    def errors(loss, grads):  # relative to the fp64 reference: the loss, and the whole gradient (L2)
        assert grads.keys() == ref[1].keys()
        flat = torch.cat([g.double().flatten() for g in grads.values()])
        want = torch.cat([ref[1][n].flatten() for n in grads])
        return abs(float(loss) - float(ref[0])) / abs(float(ref[0])), ((flat - want).norm() / want.norm()).item()

    (loss_nchw, grad_nchw), (loss_nhwc, grad_nhwc) = errors(*runs["nchw"]), errors(*runs["nhwc"])
    print(f"relative error vs fp64: loss NCHW {loss_nchw:.1e} NHWC {loss_nhwc:.1e}; gradient NCHW {grad_nchw:.1e} "
          f"NHWC {grad_nhwc:.1e}")
    # fp32 with batch-8 BatchNorm is ill-conditioned already; NHWC is as near fp64 as NCHW, up to rounding
    assert loss_nchw < 1e-4 and grad_nchw < 1e-2
    assert loss_nhwc <= 4 * loss_nchw + 1e-6 and grad_nhwc <= 4 * grad_nchw + 1e-5


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> ReIDData:
    # two identities of 4 images: one P x K batch of 8 per epoch, so epoch 1's loss is the loss of the first step
    root = generate_synthetic_market(tmp_path_factory.mktemp("d") / "m", num_ids=2, images_per_id=4, num_cameras=2,
                                     image_size=(32, 16), seed=2)
    return ReIDData.from_dataset(Market1501(root))


def _trainer(data: ReIDData, out, **config) -> Trainer:
    torch.manual_seed(0)
    return Trainer(hwnas.create_model("cdnet", **MODEL), data, TrainConfig(**{**TINY, **config}), out,
                   model_name="cdnet", model_options=MODEL, progress=False)


def test_a_channels_last_run_steps_like_the_default_one_and_a_resume_may_switch_layout(data, tmp_path):
    nchw = _trainer(data, tmp_path / "nchw")
    nchw.fit()
    nhwc = _trainer(data, tmp_path / "nhwc", channels_last=True)
    with pytest.raises(_Killed):
        nhwc.fit(callbacks=[_kill_after_first_epoch])
    ckpt = load_checkpoint(tmp_path / "nhwc" / "last.pt")
    assert ckpt["config"]["channels_last"] is True and ckpt["epoch"] == 1
    switched = _trainer(data, tmp_path / "nhwc")  # the default layout continues the NHWC run
    assert switched.resume() and switched.epoch == 1
    switched.fit()
    ours, theirs = (read_json_lines(tmp_path / run / "metrics.jsonl")[0] for run in ("nchw", "nhwc"))
    assert [r["epoch"] for r in theirs] == [1, 2] and all(math.isfinite(r["loss"]) for r in theirs)
    # the first step sees the same batch and weights: only rounding differs. Later steps are not compared: a step
    # on a batch-8 BatchNorm network turns rounding differences into loss differences of percents (measured; fp32
    # itself is that far from fp64 there, see the test above)
    assert theirs[0]["loss"] == pytest.approx(ours[0]["loss"], rel=1e-4)
    other = _trainer(data, tmp_path / "nhwc", lr=0.1)
    with pytest.raises(ValueError, match=r"settings differ .*lr 0.065 -> 0.1"):  # other settings are still compared
        other.resume()


def test_train_cli_flag_sets_channels_last(tmp_path):
    from hwnas import _cli
    from hwnas.train import build_parser, resolve_run

    argv = ["--model", "cdnet", "--synthetic", "--channels-last", "--output", str(tmp_path / "r")]
    parser = build_parser()
    run = resolve_run(parser.parse_intermixed_args(argv), _cli.given_options(parser, argv))
    assert run.train.channels_last is True
    argv = [a for a in argv if a != "--channels-last"]
    run = resolve_run(parser.parse_intermixed_args(argv), _cli.given_options(parser, argv))
    assert run.train.channels_last is False


def test_train_step_benchmark_smoke(tmp_path, capsys):
    from benchmarks.train_step import main

    out = tmp_path / "out"
    argv = ["--output", str(out), "--results-dir", str(tmp_path / "res"), "--genotype", "cdnet-top1",
            "--width-mult", "0.25", "--input-size", "32x16", "--batch-size", "8", "--warmup", "1", "--repeats", "4"]
    assert main(argv) == 0
    payload = json.loads((out / "channels_last.json").read_text())
    (row,) = payload["rows"]
    assert row["depth"] == 10 and row["NCHW"]["median_ms"] > 0 and row["NHWC"]["median_ms"] > 0
    assert row["speedup"] == pytest.approx(row["NCHW"]["median_ms"] / row["NHWC"]["median_ms"], rel=1e-2)
    assert (tmp_path / "res" / "channels_last.md").read_text() == (out / "channels_last.md").read_text()
    assert "| `cdnet:3-7-2,3-9-1,5-9-2,3-7-1,3-9-2,7-9-2` | 10 |" in capsys.readouterr().out
    for bad, message in ((["--genotype", "cnet-top1"], "is a cnet genotype"),
                         (["--batch-size", "6"], "expected a multiple of --num-instances"),
                         (["--input-size", "16x8"], "too small for cdnet, --input-size, expected at least")):
        assert main(["--output", str(tmp_path / "bad"), *bad]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
