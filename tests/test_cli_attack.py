"""Bad inputs found by an attack on every command (and the benchmark CLIs), each refused before any work.

Every row asserts exit status 2, no traceback, one ``error: <what>, <where>, expected <what>`` line naming the
option or file. Each row stands for a kind: huge or negative seeds, a width multiplier too large to build,
non-UTF-8 output file names, out-of-range optimiser settings, options that contradict each other, benchmark
CLIs that bypassed the shared parser.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from hwnas.cli import main as hwnas_main

LINE = re.compile(r"^error: .+, .+, expected .+$")
TINY_TRAIN = ["train", "--model", "cdnet", "--synthetic", "--synthetic-ids", "2", "--synthetic-images-per-id", "3", "--epochs", "1",
              "--batch-size", "8", "--num-instances", "4", "--input-size", "64x32"]
NON_UTF8 = os.fsdecode(b"\xff\xfe")

# (argv after `hwnas`, text the message must contain)
HWNAS_CASES = [
    (["search", "--seed", "99999999999999999999"], "--seed"),
    (["data", "synthetic", "--output", "never-written", "--num-ids", "1"], "--num-ids"),
    (["evaluate", "--synthetic", "--topk", "100000"], "--topk"),
    (["search", "--seed", "-1"], "--seed"),
    (["search", "--width-mult", "1e30"], "at most 16"),
    (["search", "--latency-weight", "1"], "without a latency table"),
    (["search", "search.momentum=5"], "momentum"),
    (["search", "search.alpha_betas=[2,3]"], "alpha_betas"),
    (["search", "search.seed=-1"], "seed"),
    (["search", "--data-root", NON_UTF8, "--dataset", "market-format"], "not valid UTF-8"),
    ([*TINY_TRAIN, "--momentum", "5"], "--momentum"),
    ([*TINY_TRAIN, "--gamma", "0"], "--gamma"),
    ([*TINY_TRAIN, "--seed", "-1"], "--seed"),
    ([*TINY_TRAIN, "train.seed=99999999999"], "seed"),
    ([*TINY_TRAIN, "-o", "width_mult=1e30"], "at most 16"),
    ([*TINY_TRAIN, "--synthetic-cameras", "9"], "--synthetic-cameras"),
    ([*TINY_TRAIN, "--milestones", "99"], "--milestones"),
    ([*TINY_TRAIN, "--width-mult", "0"], "--width-mult"),
    ([*TINY_TRAIN, "--input-size", "100000x100000"], "at most 4096"),
    ([*TINY_TRAIN, "--input-size", "4096x4096", "--batch-size", "64"], "GiB for activations"),
    ([*TINY_TRAIN, "-o", "width_mult=[1]"], "--model-option"),
    ([*TINY_TRAIN, "-o", "width_mult=true"], "width_mult"),
    (["export", "--model", "cdnet", "-o", "width_mult=true", "--output", "m.onnx"], "width_mult"),
    ([*TINY_TRAIN, "--epochs", "4", "--milestones", "2", "2"], "milestones"),
    ([*TINY_TRAIN, "train.height=99999"], "height"),
    (["search", "search.image_size=[100000,64]"], "image_size"),
    (["export", "--model", "cdnet", "--input-size", "5000x100", "--output", "m.onnx"], "at most 4096"),
    (["latency", "build", "--name", "x", "--input-size", "8192x8192"], "at most 4096"),
    ([*TINY_TRAIN, "--width-mult", "0.5", "-o", "width_mult=0.25"], "--width-mult"),
    ([*TINY_TRAIN, "--width-mult", "1e30"], "at most 16"),
    (["export", "--model", "cdnet", "--width-mult", "0.5", "-o", "width_mult=1", "--output", "m.onnx"],
     "--width-mult"),
    (["export", "--checkpoint", "last.pt", "--width-mult", "0.5", "--output", "m.onnx"], "--width-mult"),
    ([*TINY_TRAIN, "train.milestones=[1,5]"], "train.milestones"),
    (["search", "search.alpha_milestones=[40]"], "search.alpha_milestones"),
    (["search", "--epochs", "4", "search.alpha_milestones=[4]"], "search.alpha_milestones"),
    ([*TINY_TRAIN, "--synthetic-seed", "-3"], "--synthetic-seed"),
    (["extract", "--model", "cdnet", "--seed", "99999999999999999999", "--images", "x", "--output", "f.npz"],
     "--seed"),
    (["extract", "--model", "cdnet", "--images", "x", "--output", NON_UTF8 + ".npz"], "not valid UTF-8"),
    (["export", "--model", "cdnet", "--output", NON_UTF8 + ".onnx"], "not valid UTF-8"),
    (["export", "--model", "cdnet", "-o", "width_mult=1e30", "--output", "m.onnx"], "at most 16"),
    (["report", "flops", "--width-mult", "1e30"], "at most 16"),
    (["export", "--model", "cdnet", "--opset", "99", "--output", "m.onnx"], "--opset"),
    (["latency", "predict", "--spec", "rtx2080", "--name", "x", "--threads", "4", "--output", "t"], "--threads"),
    (["data", "synthetic", "--output", "d", "--seed", "-5"], "--seed"),
    (["latency", "build", "--name", "x", "--seed", "99999999999999999999"], "--seed"),
    # abbreviations are not flags: '--thr' must not silently mean --threads (argparse's allow_abbrev)
    (["search", "--thr", "2"], "unrecognized arguments: --thr"),
    # an unknown flag after a subcommand names the subcommand, whose help lists the flags
    (["latency", "build", "--name", "x", "--bogus"], "hwnas latency build, expected the options in 'hwnas latency build"),
    (["report", "flops", "--bogus"], "hwnas report flops, expected"),
    (["data", "synthetic", "--output", "d", "--bogus"], "hwnas data synthetic, expected"),
    # an unknown argument is reported before a missing required flag (it is usually the cause)
    (["data", "info", "/some/data"], "unrecognized arguments: /some/data, hwnas data info"),
    (["latency", "build", "--bogus"], "unrecognized arguments: --bogus, hwnas latency build"),
    (["search", "--device", "cpu:5"], "--device"),
    (["search", "--device", "cpu:0"], "--device"),  # one spelling per device
    (["search", "--device", "CPU"], "--device"),
    (["search", "--data-threads", "100000"], "--data-threads"),
    (["search", "--derive", "best"], "--derive"),
    (["search", "--derive-samples", "0"], "--derive-samples"),
    (["search", "--share-weights", "all"], "--share-weights"),
    (["search", "--derive-samples", "5"], "--derive-samples"),  # only with --derive score
    (["search", "--sweep-latency-weight", "0,0", "--latency-table", "rtx2080"], "repeated weight"),
    (["search", "--sweep-latency-weight", "0,,0.1", "--latency-table", "rtx2080"], "--sweep-latency-weight"),
    (["latency", "junk"], "hwnas latency, expected one of"),
    (["report"], "missing subcommand, hwnas report"),
    (["junk"], "unknown command"),
    ([*TINY_TRAIN, "--synthetic-dir", "/proc/hwnas-nope/d"], "--synthetic-dir"),
    ([*TINY_TRAIN, "--synthetic-ids", "2000000000"], "--synthetic-ids"),
    (["data", "synthetic", "--output", "d", "--market-test-sizes", "--input-size", "4096x4096"], "GiB needed"),
    (["search", "--width-mult", "1e3"], "--width-mult"),
    ([*TINY_TRAIN, "--num-workers", "100000"], "--num-workers"),
    ([*TINY_TRAIN, "train.epochs='5'"], "quoted value '5'"),
    ([*TINY_TRAIN, "train.num_workers=100000"], "num_workers"),
    (["data", "synthetic", "--output", "d", "--num-ids", "99999999"], "--num-ids"),
    (["data", "synthetic", "--output", "/proc/hwnas-nope/d"], "not writable"),
    (["latency", "build", "--name", "x", "--output", "/proc/hwnas-nope"], "not writable"),
    (["extract", "--model", "cdnet", "--images", "x", "--output", "/proc/hwnas-nope/f.npz"], "not writable"),
]


def _assert_clean(status: int, err: str, names: str) -> None:
    assert status == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    lines = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and LINE.match(lines[0]) and names in lines[0], err


@pytest.mark.parametrize(("argv", "names"), HWNAS_CASES, ids=[" ".join(a[:4]) for a, _ in HWNAS_CASES])
def test_attack_case_is_a_clean_error(argv, names, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    status = hwnas_main(argv)
    _assert_clean(status, capsys.readouterr().err, names)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.pt"))  # no work was done


def _bench(name: str):
    import importlib

    return importlib.import_module(f"benchmarks.{name}").main


BENCH_CASES = [
    ("latency_composition", ["--batch", "0"], "--batch-size"),
    ("latency_composition", ["--input-size", "65x33"], "multiples of 16"),
    ("latency_composition", ["--resolution", "8", "4"], "--input-size"),
    ("latency_composition", ["--width-mult", "nan"], "--width-mult"),
    ("latency_composition", ["--repeats", "0"], "--repeats"),
    ("latency_composition", ["--seed", "-1"], "--seed"),
    ("latency_composition", ["--output", "FILE/x.md"], "output path is a file"),
    ("latency_runtimes", ["--settings", "abc"], "--settings"),
    ("latency_runtimes", ["--settings", "0,64x32,0.5"], "--settings"),
    ("latency_runtimes", ["--runtimes", "nosuch"], "--runtimes"),
    ("latency_runtimes", ["--archs", "0"], "--archs"),
    ("latency_runtimes", ["--output", "FILE"], "output path is a file"),
    ("latency_runtimes", ["--summary", "../x.md", "--output", "out"], "--summary"),
    ("bench_cpp_inference", ["--output", "."], "is a folder"),
    ("bench_cpp_inference", ["--out", "FILE/x.md"], "output path is a file"),
    ("bench_cpp_inference", ["--device", "tpu"], "--device"),
    ("inference_time", ["--models", "cdnet", "--reference", "osnet"], "--reference"),
    ("inference_time", ["--latency-table", "nosuch"], "nosuch"),
    ("inference_time", ["--output", "FILE"], "output path is a file"),
    ("search_step", ["--seed", "-1"], "--seed"),
    ("main_job", ["--seeds", "0,-1"], "--seeds"),
    ("search_quality", ["--latency-table", "missing.json", "--output", "sq"], "missing.json"),
    ("search_quality", ["--results-dir", "FILE", "--output", "sq"], "output path is a file"),
    ("search_quality", ["--random", "99999999", "--output", "sq"], "--random"),
    ("inference_time", ["--workers", "100000"], "--workers"),
    ("search_quality", ["--derive", "best", "--output", "sq"], "--derive"),
    ("search_quality", ["--share-weights", "all", "--output", "sq"], "--share-weights"),
    ("search_quality", ["--derive-samples", "5", "--output", "sq"], "--derive-samples"),
    ("search_quality", ["--search-seeds", "0,0", "--output", "sq"], "--search-seeds"),
    ("main_job", ["--seeds", "0,,1"], "--seeds"),
    ("search_step", ["--output", NON_UTF8 + ".md"], "not valid UTF-8"),
]


@pytest.mark.parametrize(("module", "argv", "names"), BENCH_CASES,
                         ids=[f"{m} {' '.join(a[:2])}" for m, a, _ in BENCH_CASES])
def test_benchmark_attack_case_is_a_clean_error(module, argv, names, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("FILE").write_text("x")
    status = _bench(module)([a.replace("FILE", str(tmp_path / "FILE")) for a in argv])
    _assert_clean(status, capsys.readouterr().err, names)


def test_latency_runtimes_does_not_write_into_the_recorded_results_by_default():
    from benchmarks import latency_runtimes

    assert "benchmarks" not in latency_runtimes.OUT.parts[:1] and not latency_runtimes.OUT.is_absolute()


def test_help_shows_zero_defaults(capsys):
    assert hwnas_main(["train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "DataLoader workers (default: 0)" in out
    assert "random seed (default: 0)" in out


def test_predicting_a_shipped_table_name_into_the_user_folder_says_it_shadows_it(tmp_path, monkeypatch, capsys):
    import hwnas.latency.__main__ as latency_cli

    monkeypatch.setattr(latency_cli, "user_tables_dir", lambda: tmp_path)
    assert hwnas_main(["latency", "predict", "--spec", "rtx2080", "--name", "rtx2080"]) == 0
    assert (tmp_path / "rtx2080.json").is_file()
    assert "shadows the shipped table 'rtx2080'" in capsys.readouterr().err


def test_width_mult_flag_is_the_model_option():
    """train/extract/export take --width-mult like search and report; it is the model option width_mult."""
    from hwnas import _cli
    from hwnas import train as train_cli

    argv = [*TINY_TRAIN[1:], "--width-mult", "0.25"]
    parser = train_cli.build_parser()
    run = train_cli.resolve_run(parser.parse_intermixed_args(argv), _cli.given_options(parser, argv))
    assert run.model_options["width_mult"] == 0.25
    import hwnas
    from hwnas import export
    from hwnas._model_cli import model_from_args

    a = export.build_parser().parse_args(["--model", "cdnet", "--width-mult", "0.25", "--output", "m.onnx"])
    loaded = model_from_args(a)
    full = hwnas.create_model("cdnet")
    assert loaded.options["width_mult"] == 0.25
    assert sum(p.numel() for p in loaded.model.parameters()) < sum(p.numel() for p in full.parameters()) / 2


def test_cpu_allocator_failure_is_a_clean_out_of_memory_error():
    """torch's CPU allocator raises a plain RuntimeError; the error boundary reports it as out of memory."""
    from hwnas._cli import _is_out_of_memory

    assert _is_out_of_memory(RuntimeError("[enforce fail at alloc_cpu.cpp:124] DefaultCPUAllocator: can't allocate "
                                          "memory: you tried to allocate 8589934592 bytes."))
    assert not _is_out_of_memory(RuntimeError("shape mismatch"))


def test_training_memory_estimate_grows_with_batch_and_size():
    from hwnas.models._limits import training_activation_bytes

    small = training_activation_bytes("cdnet", (64, 32), 8, width_mult=0.25)
    assert 0 < small < training_activation_bytes("cdnet", (64, 32), 16, width_mult=0.25) == 2 * small
    assert training_activation_bytes("cdnet", (128, 64), 8, width_mult=0.25) > 3 * small


def test_an_unwritable_user_tables_folder_is_refused_before_measuring(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HWNAS_HOME", "/proc/hwnas-nope")
    monkeypatch.chdir(tmp_path)
    for argv in (["latency", "build", "--name", "x"], ["latency", "predict", "--spec", "rtx2080", "--name", "x"]):
        _assert_clean(hwnas_main(argv), capsys.readouterr().err, "user tables folder (HWNAS_HOME")


@pytest.mark.parametrize(("yaml_text", "names"), [
    ("latency_table: nosuch\n", "latency_table (in "),  # named by its key and file, not by a flag never typed
    ("search: {derive_samples: 5}\n", "search.derive_samples"),  # only with derive: score
    ('latency_table: rtx2080\nsweep_latency_weights: ["\u0660", 1]\n', "sweep_latency_weights"),  # quoted digits
    ('latency_table: rtx2080\nsweep_latency_weights: ["1_0", 2]\n', "sweep_latency_weights"),
    ("latency_table: rtx2080\nsweep_latency_weights: [0.1, 0.10]\n", "repeated weight"),
])
def test_config_file_values_are_checked_like_flags(yaml_text, names, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("c.yaml").write_text(yaml_text, encoding="utf-8")
    status = hwnas_main(["search", "--config", "c.yaml", "--output", "o"])
    _assert_clean(status, capsys.readouterr().err, names)
    assert not Path("o").exists()
