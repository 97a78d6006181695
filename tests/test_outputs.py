"""Outputs and resume (issue 12, items 3-5): file modes, temp files, run locks, unique run folders, metrics.jsonl
after a kill or a full disk, portable training checkpoints, search resume checks, divergence, mode restore."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import hwnas
from hwnas._io import (
    copy_file_atomic,
    read_json_lines,
    remove_stale_temps,
    save_figure_atomic,
    save_torch_atomic,
    write_json_atomic,
    write_text_atomic,
)
from hwnas._lock import LOCK_NAME, new_run_dir, run_lock
from hwnas.data.datasets import Market1501
from hwnas.data.synthetic import generate_synthetic_market
from hwnas.errors import CheckpointError, DivergedError, OutputError
from hwnas.training import ReIDData, TrainConfig, Trainer, load_checkpoint, model_from_checkpoint, save_checkpoint

TINY = {"epochs": 2, "batch_size": 8, "num_instances": 4, "height": 32, "width": 16, "eval_every": 0,
        "test_batch_size": 16, "milestones": (2,), "seed": 7}
MODEL = {"width_mult": 0.25, "num_classes": 3}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_result_files_and_checkpoints_are_created_0644(tmp_path, umask_022):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hwnas.search._checkpoint import save_checkpoint as save_search_checkpoint

    fig = plt.figure()
    paths = [write_json_atomic(tmp_path / "a.json", {"x": 1}), write_text_atomic(tmp_path / "a.md", "x"),
             save_figure_atomic(fig, tmp_path / "a.png"), save_torch_atomic(tmp_path / "a.pt", {"x": torch.ones(1)}),
             save_checkpoint(tmp_path / "last.pt", {"x": 1}),
             save_search_checkpoint(tmp_path / "checkpoints" / "last.pt", {"x": 1})]
    plt.close(fig)
    for p in paths:
        assert p.stat().st_mode & 0o777 == 0o644, p
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_copy_file_atomic_replaces_whole_and_keeps_the_old_file_on_failure(tmp_path, umask_022, monkeypatch):
    import shutil

    src, dst = tmp_path / "src.md", tmp_path / "results" / "dst.md"
    src.write_text("new " * 1000)
    dst.parent.mkdir()
    dst.write_text("old")
    os.chmod(dst, 0o600)
    assert copy_file_atomic(src, dst) == dst
    assert dst.read_text() == src.read_text() and dst.stat().st_mode & 0o777 == 0o644

    def half_copy(a, b):  # a copy that fails midway (full disk, kill) must not touch dst
        Path(b).write_text("ne")
        raise OSError(28, "No space left on device")

    dst.write_text("old")
    monkeypatch.setattr(shutil, "copyfile", half_copy)
    with pytest.raises(OSError):
        copy_file_atomic(src, dst)
    assert dst.read_text() == "old"
    assert sorted(p.name for p in dst.parent.iterdir()) == ["dst.md"]  # no temp file left behind


def test_stale_temp_files_are_removed_when_a_run_takes_the_folder(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    stale = [tmp_path / ".last.pt.k3j2.tmp", tmp_path / "checkpoints" / ".last.pt.x1y2.tmp",
             tmp_path / ".synthetic-market.tmp"]
    stale[0].write_bytes(b"half")
    stale[1].write_bytes(b"half")
    stale[2].mkdir()
    keep = [tmp_path / "last.pt", tmp_path / ".hidden", tmp_path / "notes.tmp"]
    for p in keep:
        p.write_text("x")
    with run_lock(tmp_path):
        pass
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)
    assert remove_stale_temps(tmp_path / "nowhere") == []


_HOLD = textwrap.dedent("""
    import os, sys, time
    from hwnas._lock import run_lock
    with run_lock(sys.argv[1]):
        print("locked", flush=True)
        if sys.argv[2] == "kill":
            os.kill(os.getpid(), 9)
        sys.stdin.read()
""")


def _holder(folder: Path, mode: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder), mode], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_a_second_run_into_a_locked_folder_is_refused(tmp_path):
    p = _holder(tmp_path, "hold")
    try:
        with pytest.raises(OutputError) as err, run_lock(tmp_path):
            pass
        assert f"in use by another run (pid {p.pid} " in str(err.value) and str(tmp_path) in str(err.value)
    finally:
        p.stdin.close()
        p.wait(timeout=60)
    with run_lock(tmp_path):  # released with its process
        pass
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    p = _holder(tmp_path, "kill")
    assert p.wait(timeout=60) == -signal.SIGKILL
    assert (tmp_path / LOCK_NAME).exists()  # the file stays behind ...
    with run_lock(tmp_path):  # ... but the OS released the lock with the process
        pass


def test_run_lock_is_reentrant_in_one_process(tmp_path):
    with run_lock(tmp_path), run_lock(tmp_path):
        assert (tmp_path / LOCK_NAME).exists()
    assert not (tmp_path / LOCK_NAME).exists()


def test_default_run_folders_started_in_the_same_second_differ(tmp_path):
    folders = [new_run_dir("search", tmp_path) for _ in range(5)]
    assert len(set(folders)) == 5 and all(f.is_dir() for f in folders)


def test_search_default_output_is_new_each_time(tmp_path, monkeypatch):
    from hwnas.search import _dist
    from hwnas.search.__main__ import _output_dir, build_parser

    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args([])
    info = _dist.current()
    assert _output_dir(args, info) != _output_dir(args, info)


def test_cli_refuses_an_output_folder_locked_by_another_run(tmp_path, capsys):
    from hwnas.cli import main

    out = tmp_path / "run"
    p = _holder(out, "hold")
    try:
        syn = ["--synthetic", "--synthetic-dir", str(tmp_path / "syn"), "--synthetic-ids", "2",
               "--synthetic-images-per-id", "4"]
        for argv in (["train", "--model", "cdnet", "-o", "width_mult=0.25", "--output", str(out), "--epochs", "1",
                      "--batch-size", "8", "--input-size", "32x16", "--no-progress", *syn],
                     ["search", "--output", str(out), "--epochs", "1", "--no-progress"]):
            status, err = main(argv), capsys.readouterr().err
            assert status == 2 and "in use by another run" in err and str(out) in err, (argv, status, err)
            assert "Traceback" not in err
    finally:
        p.stdin.close()
        p.wait(timeout=60)


# ------------------------------------------------------------------------------------------------ training
@pytest.fixture(scope="module")
def data(tmp_path_factory) -> ReIDData:
    root = generate_synthetic_market(tmp_path_factory.mktemp("d") / "m", num_ids=3, images_per_id=4, num_cameras=2,
                                     image_size=(32, 16), seed=1)
    return ReIDData.from_dataset(Market1501(root))


class _Killed(Exception):
    pass


def _kill_after_first_epoch(epoch: int, record: dict) -> None:
    if epoch == 1:
        raise _Killed


def test_metrics_log_survives_a_partial_line_and_later_epochs(data, tmp_path):
    out = tmp_path / "run"
    torch.manual_seed(0)
    first = Trainer(hwnas.create_model("cdnet", **MODEL), data, TrainConfig(**TINY), out, model_name="cdnet",
                    model_options=MODEL, progress=False)
    with pytest.raises(_Killed):
        first.fit(callbacks=[_kill_after_first_epoch])
    with open(out / "metrics.jsonl", "a") as f:  # epoch 2 logged but not checkpointed, then a kill mid-line
        f.write(json.dumps({"epoch": 2, "loss": 1.0}) + "\n" + '{"epoch": 3, "lo')
    resumed = Trainer(hwnas.create_model("cdnet", **MODEL), data, TrainConfig(**TINY), out, model_name="cdnet",
                      model_options=MODEL, progress=False)
    assert resumed.resume() and resumed.epoch == 1
    records, dropped = read_json_lines(out / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1] and dropped == 0
    resumed.fit()
    records, dropped = read_json_lines(out / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2] and dropped == 0 and records[1]["loss"] != 1.0


def test_fresh_start_in_a_folder_with_an_old_log_keeps_no_old_record(data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"epoch": 1, "loss": 9}\n{"epoch": 2, "lo')
    torch.manual_seed(0)
    t = Trainer(hwnas.create_model("cdnet", **MODEL), data, TrainConfig(**{**TINY, "epochs": 1}), out,
                model_name="cdnet", model_options=MODEL, progress=False)
    t.fit()
    records, _ = read_json_lines(out / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1] and records[0]["loss"] != 9


def test_training_checkpoint_stores_the_genotype_string_not_the_path(data, tmp_path, monkeypatch):
    gpath = hwnas.space.PRESETS["cdnet-top1"].save(tmp_path / "somewhere" / "g.json")
    options = {**MODEL, "genotype": str(gpath)}
    torch.manual_seed(0)
    t = Trainer(hwnas.create_model("cdnet", **options), data, TrainConfig(**{**TINY, "epochs": 1}), tmp_path / "run",
                model_name="cdnet", model_options=options, progress=False)
    t.fit()
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["model_options"]["genotype"] == hwnas.space.PRESETS["cdnet-top1"].tostr()
    gpath.unlink()  # the genotype file moved away, and another working folder
    monkeypatch.chdir(tmp_path / "somewhere")
    model, _ = model_from_checkpoint(tmp_path / "run" / "last.pt")
    assert model.backbone.genotype == hwnas.space.PRESETS["cdnet-top1"]


def test_dataparallel_checkpoint_loads_and_a_foreign_one_is_a_short_error(tmp_path):
    model = hwnas.create_model("cdnet", **MODEL)
    base = {"model_name": "cdnet", "model_options": MODEL, "epoch": 1}
    save_checkpoint(tmp_path / "dp.pt", {**base, "model": {f"module.{k}": v for k, v in model.state_dict().items()}})
    loaded, _ = model_from_checkpoint(tmp_path / "dp.pt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    other = hwnas.create_model("cdnet", genotype="cdnet-top1", **MODEL)
    save_checkpoint(tmp_path / "other.pt", {**base, "model": other.state_dict()})
    with pytest.raises(CheckpointError) as err:
        model_from_checkpoint(tmp_path / "other.pt")
    assert len(str(err.value)) < 900 and "weights do not fit" in str(err.value) and "other.pt" in str(err.value)


def test_training_diverging_is_a_diverged_error(data, tmp_path):
    torch.manual_seed(0)
    model = hwnas.create_model("cdnet", **MODEL)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    t = Trainer(model, data, TrainConfig(**TINY), tmp_path / "run", model_name="cdnet", model_options=MODEL,
                progress=False)
    with pytest.raises(DivergedError, match=r"training loss is nan at epoch 1, batch 0, .*expected a finite loss"):
        t.fit()


# ------------------------------------------------------------------------------------------------- search
def _search_parts():
    """3 identities of in-memory images, batches of 2 ids x 4 images, a 1-epoch supernet search at width 0.125."""
    from hwnas.search import SearchConfig
    from hwnas.search._data import SearchData, TensorBatches

    g = torch.Generator().manual_seed(0)
    pids = torch.arange(3).repeat_interleave(8)
    images = torch.randn(24, 3, 32, 32, generator=g)
    data = SearchData(TensorBatches(images, pids, 8, 4, seed=0, stream=0),
                      TensorBatches(images, pids, 8, 4, seed=0, stream=1), 3, "tiny in-memory data")
    return data, SearchConfig(width_mult=0.125, image_size=(32, 32), epochs=1, ids_per_batch=2, images_per_id=4,
                              alpha_lr=0.05, alpha_milestones=(1,), checkpoint_every=0)


def test_search_resume_checks_the_latency_table_and_weight(tmp_path):
    from hwnas.latency import load_table
    from hwnas.latency.expected import LatencyTable
    from hwnas.latency.schema import from_dict, to_dict
    from hwnas.search import Searcher

    data, config = _search_parts()
    config = config.replace(latency_weight=0.01)
    rtx = load_table("rtx2080", space="cdnet")
    Searcher(config, data, tmp_path, rtx, progress=False).save()
    table_differs = "latency table differs from the checkpoint's run"
    cases = [(config, load_table("t4", space="cdnet"), table_differs + r" \(latency table rtx2080 \(sha256:.*\) -> t4"),
             (config.replace(latency_weight=0.02), rtx, r"settings differ from the checkpoint's run \(.*"
                                                        r"latency_weight 0.01 -> 0.02"),
             (config, None, table_differs + r" \(latency table rtx2080 \(sha256:.*\) -> none"),
             (config.replace(seed=1), None, r"settings and latency table differ from the checkpoint's run \(seed 0 -> 1")]
    edited = to_dict(rtx.data)
    edited["layers"][0]["latency_ms"] *= 2  # same name, other content
    cases.append((config, LatencyTable(from_dict(edited)), table_differs + r" \(latency table rtx2080 \(sha256:.*\) -> "
                                                                          r"rtx2080 \(sha256"))
    for cfg, table, message in cases:
        with pytest.raises(CheckpointError, match=message):
            Searcher(cfg, data, tmp_path, table, progress=False).run(resume=True)
    assert Searcher(config, data, tmp_path, rtx, progress=False).run(resume=True) is not None


def test_search_with_nan_alphas_stops_with_a_diverged_error(tmp_path):
    from hwnas.search import Searcher

    data, config = _search_parts()
    s = Searcher(config, data, tmp_path, None, progress=False)
    with torch.no_grad():
        s.model.alphas[0, 0] = float("nan")
    with pytest.raises(DivergedError, match="alphas became NaN or infinite at epoch 1, step 1"):
        s.run()


# ------------------------------------------------------------------------------------------- mode restore
def _frozen_model() -> torch.nn.Module:
    model = hwnas.create_model("cdnet", **MODEL).train()
    model.backbone.stem.eval()  # a deliberately frozen submodule
    return model


def _modes(model: torch.nn.Module) -> dict[str, bool]:
    return {name: m.training for name, m in model.named_modules()}


def test_profile_model_restores_every_submodules_mode():
    from hwnas.profile import profile_model

    model = _frozen_model()
    before = _modes(model)
    profile_model(model, (64, 32))
    assert _modes(model) == before and not model.backbone.stem.training and model.training


def test_measure_latency_restores_mode_device_and_dtype():
    from hwnas.report.model_report import MeasureSpec, measure_latency

    model = _frozen_model().double()
    before = _modes(model)
    measure_latency(model, (32, 16), MeasureSpec(repeats=3, warmup=0))
    assert _modes(model) == before and next(model.parameters()).dtype == torch.float64


def test_tsne_features_restore_every_submodules_mode(data):
    from hwnas.data.loaders import build_test_loader
    from hwnas.report.tsne import neck_features

    model = _frozen_model()
    before = _modes(model)
    neck_features(model, build_test_loader(data.query, height=32, width=16), torch.device("cpu"))
    assert _modes(model) == before


# ------------------------------------------------------------------------------------------------ benchmarks
def test_bench_cpp_inference_does_not_overwrite_the_recorded_result_by_default(tmp_path, monkeypatch):
    from benchmarks import bench_cpp_inference as bench

    recorded = bench.RECORDED.read_bytes()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench, "build_models", lambda device: {})
    monkeypatch.setattr(bench, "time_models", lambda *a: [bench.Timing("cdnet-top2 eager", 1, 1.0, 1.0, 1.0)])
    assert bench.main(["--batch-sizes", "1", "--rounds", "1"]) == 0
    assert (tmp_path / "runs" / "benchmarks" / "cpp_inference.md").is_file()
    assert bench.RECORDED.read_bytes() == recorded


def test_a_corrupt_cache_reads_as_missing_and_is_logged(tmp_path, caplog):
    from hwnas._io import read_json_cache

    cases = {"ok": '{"x": 1, "y": 2}', "truncated": '{"x": 1, "y', "empty": "", "list": "[1]",
             "missing_key": '{"x": 1}', "nan": '{"x": NaN, "y": 1}'}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "binary").write_bytes(b"\xff\xfe{")
    (tmp_path / "link").symlink_to(tmp_path / "ok")  # another file's value, not this run's cache
    assert read_json_cache(tmp_path / "ok", ("x", "y")) == {"x": 1, "y": 2}
    assert read_json_cache(tmp_path / "absent") is None
    with caplog.at_level("WARNING"):
        for name in [*cases.keys() - {"ok"}, "binary", "link"]:
            assert read_json_cache(tmp_path / name, ("x", "y")) is None, name
    assert sum("ignoring" in r.getMessage() for r in caplog.records) == len(cases) + 1


# ------------------------------------------------------------------------------------------------ empty folders
def test_a_folder_made_for_a_run_that_wrote_nothing_is_removed_again(tmp_path):
    new = tmp_path / "a" / "b" / "run"
    with run_lock(new):
        assert (new / LOCK_NAME).exists()
    assert not (tmp_path / "a").exists()  # the folder and the parents it made
    with run_lock(new):
        (new / "x.json").write_text("{}")
    assert (new / "x.json").is_file()
    existing = tmp_path / "mine"
    existing.mkdir()
    with pytest.raises(_Killed), run_lock(existing):
        raise _Killed
    assert existing.is_dir()  # the user's folder stays, empty or not
    with pytest.raises(_Killed), run_lock(tmp_path / "refused"):
        raise _Killed
    assert not (tmp_path / "refused").exists()


def test_a_default_run_folder_is_removed_when_its_run_is_refused(tmp_path):
    parent = tmp_path / "runs"
    folder = new_run_dir("search", parent)
    with pytest.raises(_Killed), run_lock(folder):
        raise _Killed
    assert not parent.exists()
    kept = new_run_dir("search", parent)
    with run_lock(kept):
        (kept / "search.log").write_text("")
    assert (kept / "search.log").is_file()


def test_only_the_folders_really_made_are_removed_through_dotdot_and_links(tmp_path, monkeypatch):
    from hwnas._io import make_dirs, remove_empty_dirs

    monkeypatch.chdir(tmp_path)
    mine = tmp_path / "experiments" / "dec"
    mine.mkdir(parents=True)  # the user's, empty
    made = make_dirs("tmp/../experiments/dec/run1")
    assert made == [mine / "run1", tmp_path / "tmp"]
    remove_empty_dirs(made)
    assert mine.is_dir() and not (tmp_path / "tmp").exists() and not (mine / "run1").exists()
    (tmp_path / "link").symlink_to(mine)
    with pytest.raises(_Killed), run_lock("link/../link/x/y"):
        raise _Killed
    assert mine.is_dir() and (tmp_path / "link").is_symlink() and not list(mine.iterdir())
    assert sorted(p.name for p in mine.parent.iterdir()) == ["dec"]  # link/.. is experiments: its new link/x/y went


def test_a_path_flag_through_a_link_and_dotdot_names_the_folder_the_os_does(tmp_path, monkeypatch):
    from hwnas import _cli

    monkeypatch.chdir(tmp_path)
    (tmp_path / "t" / "inner").mkdir(parents=True)
    (tmp_path / "L").symlink_to(tmp_path / "t" / "inner")
    # LINK/.. is the link target's parent for mkdir and open, while logging and tempfile tidy it away lexically
    assert _cli.path("L/../run") == tmp_path / "t" / "run"
    assert _cli.path("new/../run") == tmp_path / "run" and _cli.path("L/run") == Path("L/run")


def test_a_failed_atomic_write_leaves_no_folder_it_made(tmp_path):
    target = tmp_path / "new" / "deeper" / "report.md"
    with pytest.raises(OutputError):
        write_text_atomic(target, "\udcff not UTF-8")
    assert not (tmp_path / "new").exists()
    write_text_atomic(target, "ok")
    assert target.read_text() == "ok"


def test_output_dir_for_removes_the_folders_it_made_on_failure(tmp_path):
    from hwnas import _cli

    with pytest.raises(_Killed), _cli.output_dir_for(tmp_path / "x" / "y"):
        raise _Killed
    assert not (tmp_path / "x").exists()
    with _cli.output_dir_for(tmp_path / "x" / "y") as out:
        (out / "model.onnx").write_bytes(b"")
    assert (tmp_path / "x" / "y" / "model.onnx").is_file()


def test_train_and_search_refused_on_their_data_leave_no_folder(tmp_path, monkeypatch, capsys):
    from hwnas.cli import main

    root = generate_synthetic_market(tmp_path / "few", num_ids=3, images_per_id=4, num_cameras=2,
                                     image_size=(32, 16), seed=1)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    mine = work / "experiments" / "dec"
    for argv in (["train", "--model", "cdnet", "--data-root", str(root), "--epochs", "1", "--output",
                  "tmp/../experiments/dec/run1"],
                 ["search", "--data-root", str(root), "--epochs", "1", "--output", "tmp/../experiments/dec/run1",
                  "--no-progress"]):
        mine.mkdir(parents=True, exist_ok=True)  # the user's empty folders stay
        status, err = main(argv), capsys.readouterr().err
        assert status == 2 and "only 3 identities" in err, (argv, err)
        assert sorted(p.relative_to(work).as_posix() for p in work.rglob("*")) == ["experiments", "experiments/dec"]
    mine.rmdir()
    mine.parent.rmdir()
    for argv in (["train", "--model", "cdnet", "--data-root", str(root), "--epochs", "1"],
                 ["search", "--data-root", str(root), "--epochs", "1", "--no-progress"],
                 ["train", "--model", "cdnet", "--data-root", str(root), "--epochs", "1", "--output", "a/b"],
                 ["search", "--data-root", str(root), "--epochs", "1", "--output", "a/b", "--no-progress"]):
        status, err = main(argv), capsys.readouterr().err
        assert status == 2 and "only 3 identities" in err, (argv, err)
        assert list(work.iterdir()) == [], (argv, list(work.rglob("*")))


def test_json_error_text_reads_once():
    import json

    from hwnas._io import json_error_text

    with pytest.raises(ValueError) as bad:
        json.loads('{"a": "x\ny"}')
    assert json_error_text(bad.value) == "Invalid control character at line 1 column 9"  # not "at at line"
    with pytest.raises(ValueError) as bad:
        json.loads("{")
    assert json_error_text(bad.value, column=False) == "Expecting property name enclosed in double quotes at line 1"
    assert json_error_text(ValueError("other")) == "other"
