"""The command-line contract shared by every tool: one entry point, the same flags, one error boundary.

Bad options are refused before any work with ``error: <what>, <where>, <expected>`` on stderr, exit status 2 and
no traceback (hwnas._cli). Each row below is one kind of bad input for one command.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hwnas
from hwnas import _cli
from hwnas.cli import COMMANDS
from hwnas.cli import main as hwnas_main
from hwnas.errors import HwnasError, UsageError

SYN = ["--synthetic", "--synthetic-ids", "2", "--synthetic-images-per-id", "3"]
TABLES = Path(hwnas.__file__).parent / "latency" / "tables"

# (command argv after `hwnas`, text the message must contain)
BAD_OPTIONS = [
    (["search", "--batch-size", "0"], "--batch-size"),
    (["search", "--batch-size", "6"], "--batch-size"),
    (["search", "--epochs", "0"], "--epochs"),
    (["search", "--latency-weight", "nan"], "--latency-weight"),
    (["search", "--latency-weight", "inf"], "--latency-weight"),
    (["search", "--latency-weight", "-1"], "--latency-weight"),
    (["search", "--latency-target-ms", "0"], "--latency-target-ms"),
    (["search", "--input-size", "20x10"], "--input-size"),
    (["search", "--input-size", "256by128"], "--input-size"),
    (["search", "--width-mult", "0.01"], "width_mult"),
    (["search", "--threads", "0"], "--threads"),
    (["search", "--data-threads", "0"], "--data-threads"),
    (["search", "--ops-backend", "nope"], "--ops-backend"),
    (["search", "--space", "nope"], "--space"),
    (["search", "--device", "cuda:0"], "--device"),
    (["search", "--device", "tpu"], "--device"),
    (["search", "--sweep-latency-weight", "0,1"], "--latency-table"),
    (["search", "--sweep-latency-weight", "0,nan", "--latency-table", "rtx2080"], "--sweep-latency-weight"),
    (["search", "--resume"], "--output"),
    (["search", "--latency-table", "no-such-table"], "no-such-table"),
    (["train", "--model", "nope", *SYN], "--model"),
    (["train", "--model", "cdnet", "-o", "nope=1", *SYN], "--model-option"),
    (["train", "--model", "cdnet", "-o", "width_mult=0.01", *SYN], "width_mult"),
    (["train", "--model", "cdnet", "--batch-size", "0", *SYN], "--batch-size"),
    (["train", "--model", "cdnet", "--num-instances", "0", *SYN], "--num-instances"),
    (["train", "--model", "cdnet", "--batch-size", "6", *SYN], "--batch-size"),
    # FBLNeck's two parts need a stage-2 map of >= 2 rows: height >= 29 (DESIGN 2b.4)
    (["train", "--model", "cdnet", "--input-size", "8x8", *SYN], "at least 29x13"),
    (["train", "--model", "cdnet", "--lr", "inf", *SYN], "--lr"),
    (["train", "--model", "cdnet", "--threads", "0", *SYN], "--threads"),
    (["train", "--model", "cdnet", "--device", "cuda", *SYN], "--device"),
    (["train", "--model", "cdnet", "--resume", *SYN], "--output"),
    (["train", "--model", "cdnet"], "--data-root"),
    (["evaluate", "--checkpoint", "missing.pt", *SYN], "missing.pt"),
    (["evaluate", "--checkpoint", "missing.pt", "--batch-size", "0", *SYN], "--batch-size"),
    (["evaluate", "--checkpoint", "missing.pt", "--device", "cuda", *SYN], "--device"),
    (["report", "flops", "--input-size", "8x8"], "at least 29x13"),
    (["report", "flops", "--model", "nope"], "--model"),
    (["report", "flops", "--width-mult", "0"], "--width-mult"),
    (["report", "model", "--batch-size", "0"], "--batch-size"),
    (["report", "model", "--repeats", "1"], "--repeats"),
    (["report", "model", "--device", "cuda", "--no-measure"], "--device"),
    (["report", "nope"], "nope"),
    (["latency", "show", "no-such-table"], "no-such-table"),
    (["latency", "predict", "--spec", "rtx2080", "--name", "x", "--batch-size", "0"], "--batch-size"),
    (["latency", "predict", "--spec", "rtx2080", "--name", "x", "--input-size", "65x33"], "--input-size"),
    (["latency", "predict", "--spec", "rtx2080", "--name", "../escape"], "--name"),
    (["latency", "build", "--name", "x", "--threads", "0"], "--threads"),
    (["latency", "build", "--name", "x", "--repeats", "1"], "--repeats"),
    (["latency", "validate", "--table", "rtx2080", "--archs", "0"], "--archs"),
    (["data", "synthetic", "--output", "x", "--num-ids", "0"], "--num-ids"),
    (["data", "synthetic", "--output", "x", "--input-size", "4x4"], "--input-size"),
    (["data", "info", "--data-root", "no/such/folder"], "no/such/folder"),
    (["nope"], "nope"),
    (["train", "--model", "cdnet", "--resume", "--overwrite", "--output", "x", *SYN], "--resume and --overwrite"),
    (["train", "--model", "cdnet", "-o", "genotype=cdnet:3-5-1", *SYN], "genotype has 1 layers"),
    (["train", "--model", "cdnet", "-o", "genotype=no/such/g.json", *SYN], "no/such/g.json"),
    (["search", "--resume", "--output", "no-such-run"], "no-such-run"),
    (["report", "tsne", "--checkpoint", "missing.pt", *SYN], "missing.pt"),
    (["report", "model", "--no-measure", "--genotype", "cdnet-top9"], "cdnet-top9"),
    (["latency", "show", "no/such/table.json"], "no/such/table.json"),
    (["search", "--dataset", "nope"], "--dataset"),
    (["search", "search.lr=nan"], "search.lr"),
    (["train", "--config", "missing.yaml", "--model", "cdnet", *SYN], "missing.yaml"),
    (["train", "--model", "cdnet", *SYN, "train.nope=1"], "train.nope"),
    (["train", "--model", "cdnet", "--load-weights", "missing.pt", *SYN], "missing.pt"),
    (["evaluate", "--checkpoint", "missing.pt", *SYN, "eval.metric=nope"], "eval.metric"),
    (["extract", "--model", "osnet", "--images", "no/*.jpg", "--output", "f.npz"], "--images"),
    (["extract", "--model", "osnet", "--images", "x", "--output", "f.csv"], "--output"),
    (["extract", "--images", "x", "--output", "f.npz"], "--checkpoint"),
    (["extract", "--checkpoint", "c.pt", "--model", "osnet", "--images", "x", "--output", "f.npz"], "--model"),
    (["extract", "--model", "osnet", "--images", "x", "--output", "f.npz", "--batch-size", "0"], "--batch-size"),
    (["export", "--model", "osnet", "--output", "m.txt"], "--output"),
    (["export", "--model", "osnet", "--fuse-bn", "--output", "m.onnx"], "--fuse-bn"),
    (["export", "--model", "cdnet", "--input-size", "8x8", "--output", "m.onnx"], "at least 29x13"),
    (["export", "--checkpoint", "missing.pt", "--output", "m.onnx"], "missing.pt"),
]


@pytest.mark.parametrize(("argv", "names"), BAD_OPTIONS, ids=[" ".join(a[:3]) for a, _ in BAD_OPTIONS])
def test_bad_option_is_a_clean_error(argv, names, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert hwnas_main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ") and names in line, line
    assert "expected" in line, line


def _genotype_file(content: bytes):
    def make(tmp: Path) -> str:
        (tmp / "g.json").write_bytes(content)
        return str(tmp / "g.json")
    return make


def _table_with(token: str):
    """The shipped rtx2080 table with one layer entry replaced by ``token`` (JSON text)."""
    def make(tmp: Path) -> str:
        text = (TABLES / "rtx2080.json").read_text()
        data = json.loads(text)
        text = json.dumps(data).replace(json.dumps(data["layers"][2]["latency_ms"]), token, 1)
        (tmp / "t.json").write_text(text)
        return str(tmp / "t.json")
    return make


def _checkpoint(kind: str):
    def make(tmp: Path) -> str:
        path = tmp / "ckpt.pt"
        if kind == "junk":
            path.write_bytes(b"not a checkpoint")
        elif kind == "code":
            torch.save({"model": {}, "hook": print}, path)
        elif kind == "folder":
            path.mkdir()
        else:  # weights of another genotype under cdnet-top2's name
            other = hwnas.create_model("cdnet", genotype="cdnet-top1", width_mult=0.25, num_classes=2)
            torch.save({"model": other.state_dict(), "model_name": "cdnet", "epoch": 1,
                        "model_options": {"width_mult": 0.25, "num_classes": 2}}, path)
        return str(path)
    return make


def _non_utf8_folder(tmp: Path) -> str:
    raw = os.fsencode(tmp) + b"/data-\xff"
    os.mkdir(raw)
    return os.fsdecode(raw)


DEEP = b"[" * 100_000 + b"]" * 100_000
NAN_ALPHAS = (b'{"layers": [[3, 5, 1], [3, 7, 2], [5, 7, 2], [5, 9, 1], [5, 7, 2], [5, 7, 1]], '
              b'"alphas": [[NaN, 0.1]]}')
TSNE = ["report", "tsne", *SYN, "--checkpoint"]

# (id, make(tmp) -> the bad file's path, argv with {} for that path, texts the message must contain)
BAD_FILES = [
    ("train genotype not UTF-8", _genotype_file(b'{"layers": "caf\xe9"}'),
     ["train", "--model", "cdnet", "-o", "genotype={}", *SYN], ["not UTF-8 text", "g.json"]),
    ("train genotype nested", _genotype_file(DEEP), ["train", "--model", "cdnet", "-o", "genotype={}", *SYN],
     ["JSON nested too deeply", "g.json"]),
    ("train genotype NaN alpha", _genotype_file(NAN_ALPHAS), ["train", "--model", "cdnet", "-o", "genotype={}", *SYN],
     ["alpha is nan", "g.json"]),
    ("report model genotype nested", _genotype_file(DEEP), ["report", "model", "--no-measure", "--genotype", "{}"],
     ["JSON nested too deeply", "g.json"]),
    ("search table Infinity", _table_with("Infinity"), ["search", "--latency-table", "{}"],
     ["non-finite number Infinity", "t.json"]),
    ("search table 1e999", _table_with("1e999"), ["search", "--latency-table", "{}"],
     ["latency entry is Infinity", "layers[2].latency_ms", "t.json"]),
    ("search table negative", _table_with("-1.5"), ["search", "--latency-table", "{}"],
     ["latency entry is -1.5", "t.json"]),
    ("latency show NaN", _table_with("NaN"), ["latency", "show", "{}"], ["non-finite number NaN", "t.json"]),
    ("latency show not UTF-8", _genotype_file(b"{\"name\": \"\xff\"}"), ["latency", "show", "{}"],
     ["not UTF-8 text", "g.json"]),
    ("evaluate junk checkpoint", _checkpoint("junk"), ["evaluate", "--checkpoint", "{}", *SYN],
     ["not a PyTorch checkpoint", "ckpt.pt"]),
    ("evaluate checkpoint with code", _checkpoint("code"), ["evaluate", "--checkpoint", "{}", *SYN],
     ["refers to Python code", "ckpt.pt"]),
    ("evaluate checkpoint is a folder", _checkpoint("folder"), ["evaluate", "--checkpoint", "{}", *SYN],
     ["checkpoint path is a folder", "ckpt.pt"]),
    ("evaluate foreign weights", _checkpoint("other"), ["evaluate", "--checkpoint", "{}", *SYN],
     ["weights do not fit", "missing (", "ckpt.pt"]),
    ("tsne junk checkpoint", _checkpoint("junk"), [*TSNE, "{}"], ["not a PyTorch checkpoint", "ckpt.pt"]),
    ("data info non-UTF-8 folder", _non_utf8_folder, ["data", "info", "--data-root", "{}"],
     ["dataset path is not valid UTF-8", "data-\\xff"]),
    ("search output non-UTF-8 folder", _non_utf8_folder, ["search", "--output", "{}"],
     ["output path is not valid UTF-8", "data-\\xff", "--output"]),
    ("train data-root non-UTF-8 folder", _non_utf8_folder, ["train", "--model", "cdnet", "--data-root", "{}"],
     ["dataset path is not valid UTF-8", "data-\\xff"]),
]


@pytest.mark.parametrize(("make", "argv", "texts"), [r[1:] for r in BAD_FILES], ids=[r[0] for r in BAD_FILES])
def test_bad_file_is_a_clean_error_naming_it(make, argv, texts, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = make(tmp_path)
    assert hwnas_main([a.replace("{}", bad) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ") and "expected" in line, line
    for text in texts:
        assert text in line, line
    assert len(line) < 1000, line


def test_train_resume_refusal_names_the_differing_option(tmp_path, capsys):
    from hwnas.train import build_parser, resolve_run

    out = tmp_path / "run"
    argv = ["train", "--model", "cdnet", "-o", "width_mult=0.25", "--output", str(out), *SYN, "--input-size", "32x16",
            "--batch-size", "8"]
    parser = build_parser()
    config = resolve_run(parser.parse_intermixed_args(argv[1:]), _cli.given_options(parser, argv[1:])).train
    model = hwnas.create_model("cdnet", width_mult=0.25, num_classes=2)
    out.mkdir()
    torch.save({"model": model.state_dict(), "model_name": "cdnet", "epoch": 1, "config": {**config.to_dict(), "lr": 0.1},
                "model_options": {"width_mult": 0.25, "num_classes": 2}}, out / "last.pt")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert hwnas_main([*argv, "--resume"]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # refused before train.log or config.yaml
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines  # the error line alone (the dataset's log line is held until a run is accepted)
    err = lines[-1]
    assert err.startswith("error: settings differ from the checkpoint's run (lr 0.1 -> 0.065), checkpoint '") and \
        "expected" in err


def test_output_path_that_is_a_file_is_refused(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for argv in (["search", "--output", str(afile)], ["train", "--model", "cdnet", "--output", str(afile), *SYN],
                 ["data", "synthetic", "--output", str(afile)],
                 ["report", "model", "--no-measure", "--output", str(afile)]):
        assert hwnas_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "output path is a file" in err and str(afile) in err and "Traceback" not in err


def test_train_refuses_a_non_empty_output_folder(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "something").write_text("x")
    assert hwnas_main(["train", "--model", "cdnet", "--output", str(out), *SYN]) == 2
    assert "not empty" in capsys.readouterr().err


def test_help_lists_commands_and_every_option_has_help(capsys):
    assert hwnas_main([]) == 0
    listing = capsys.readouterr().out
    for name in COMMANDS:
        assert f"  {name}" in listing
    for name in COMMANDS:
        assert hwnas_main([name, "--help"]) == 0, name
        capsys.readouterr()
    for parser in _all_parsers():
        for action in parser._actions:
            if action.option_strings and not isinstance(action, argparse._HelpAction):
                assert action.help, f"{parser.prog} {action.option_strings} has no help"


def _all_parsers():
    """Every (sub)parser of every command, built the way the commands build them."""
    from hwnas.evaluate import build_parser as evaluate_parser
    from hwnas.export import build_parser as export_parser
    from hwnas.extract import build_parser as extract_parser
    from hwnas.latency.__main__ import _parser as latency_parser
    from hwnas.search.__main__ import build_parser as search_parser
    from hwnas.train import build_parser as train_parser

    roots = [search_parser(), train_parser(), evaluate_parser(), extract_parser(), export_parser(),
             latency_parser("hwnas latency")]
    report = _cli.ArgumentParser(prog="hwnas report")
    sub = report.add_subparsers()
    for modname in ("hwnas.report.flops", "hwnas.report.model_report", "hwnas.report.tsne", "hwnas.report.plots"):
        importlib.import_module(modname).add_arguments(sub.add_parser(modname))
    roots.append(report)
    seen = []
    while roots:
        p = roots.pop()
        seen.append(p)
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                roots.extend(action.choices.values())
    return seen


def test_same_flag_names_across_tools():
    flags = {}
    for parser in _all_parsers():
        for action in parser._actions:
            for opt in action.option_strings:
                flags.setdefault(opt, set()).add(parser.prog)
    for old in ("--out", "--image-size", "--height", "--width", "--resolution", "--batch"):
        assert old not in flags, f"{old} is used by {sorted(flags[old])}; the shared flag replaces it"
    for shared in ("--input-size", "--output", "--threads", "--device", "--seed"):
        assert shared in flags


def test_python_m_hwnas_and_module_entry_points_agree():
    out = subprocess.run([sys.executable, "-m", "hwnas"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "search" in out.stdout and "latency" in out.stdout
    bad = subprocess.run([sys.executable, "-m", "hwnas.search", "--epochs", "0"], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1] == "error: bad value '0', --epochs, expected an integer >= 1"


def test_error_boundary_kinds(capsys):
    @_cli.command
    def raises(argv=None, *, prog="python -m hwnas.demo"):
        raise argv

    assert raises(UsageError("bad value 3, --x, expected 4")) == 2
    assert capsys.readouterr().err == "error: bad value 3, --x, expected 4\n"
    assert raises(FileNotFoundError(2, "No such file or directory", "/no/file")) == 2
    assert capsys.readouterr().err.startswith("error: no such file or directory, /no/file, expected an existing path")
    assert raises(PermissionError(13, "Permission denied", "/root/x")) == 2
    assert "/root/x" in capsys.readouterr().err
    assert raises(OSError(28, "No space left on device", "/full/disk")) == 2
    assert "free disk space" in capsys.readouterr().err
    assert raises(MemoryError()) == 2
    assert "out of memory" in capsys.readouterr().err
    assert raises(ZeroDivisionError("boom")) == 1  # a bug: one line, not a traceback
    err = capsys.readouterr().err
    assert err.startswith("error: internal error ZeroDivisionError: boom") and "Traceback" not in err
    assert raises(HwnasError("x, y, expected z")) == 2


def test_value_types():
    assert _cli.input_size("256x128") == (256, 128) and _cli.input_size(" 64X32 ") == (64, 32)
    for bad in ("256", "0x10", "axb", "-1x5", "1x2x3"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            _cli.input_size(bad)
    for fn, bad in ((_cli.positive_int, "0"), (_cli.nonnegative_int, "-1"), (_cli.finite_float, "nan"),
                    (_cli.positive_float, "0"), (_cli.nonnegative_float, "-inf"), (_cli.fraction, "1.5")):
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            fn(bad)


def test_integers_are_plain_ascii_digits():
    """Python's int() takes ' 2', '1_000' and other scripts' digits; a command line takes only what it shows."""
    assert _cli.positive_int("2") == 2 and _cli.positive_int("+3") == 3 and _cli.seed("0") == 0
    for bad in (" 2", "2 ", "1_000", "\u0663", "0x2", "", "2.0", "1e3"):
        for fn in (_cli.positive_int, _cli.nonnegative_int, _cli.seed):
            with pytest.raises(argparse.ArgumentTypeError, match=f"bad value {bad!r}, expected"):
                fn(bad)
    for bad in ("1_0x5", "\u0663x4", "2x"):
        with pytest.raises(argparse.ArgumentTypeError, match="HEIGHTxWIDTH"):
            _cli.input_size(bad)
    assert _cli.int_at_least(1, 8)("8") == 8
    with pytest.raises(argparse.ArgumentTypeError, match="between 1 and 8"):
        _cli.int_at_least(1, 8)("9")


@pytest.mark.parametrize("argv, expected", [
    (["--threads", "2147483648"], "bad value '2147483648', --threads, expected an integer between 1 and 4096"),
    (["--no-progress=1"], "unexpected value '1', --no-progress, expected the flag alone (it takes no value)"),
    (["--output", ""], "bad value '', --output, expected a file or folder path (use . for the current folder)"),
])
def test_shared_flags_refuse_overflow_values_and_empty_paths(argv, expected, capsys):
    p = _cli.ArgumentParser(prog="tool")
    _cli.add_threads(p)
    _cli.add_progress(p)
    _cli.add_output(p, "out")
    with pytest.raises(SystemExit) as e:
        p.parse_args(argv)
    assert e.value.code == 2 and capsys.readouterr().err == f"error: {expected}\n"


def test_output_folders_that_cannot_be_made_are_refused_up_front(tmp_path):
    from hwnas.errors import OutputError

    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    for name in ("dangling", "loop_a"):
        with pytest.raises(OutputError, match=f"broken or looping symbolic link, --output {tmp_path / name}"):
            _cli.check_output_dir(tmp_path / name)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="--results-dir"):
        _cli.make_output_dir(tmp_path / "file" / "sub", "--results-dir")
    assert _cli.make_output_dir(tmp_path / "a" / "b").is_dir()


def test_search_checks_its_inputs_before_writing_into_the_output_folder(tmp_path, capsys):
    from hwnas.search.__main__ import main as search_main

    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "config.yaml").write_text("precious: 1\n")
    assert search_main(["--output", str(kept), "--epochs", "2"]) == 2  # a folder with someone's files
    assert "output folder is not empty, --output" in capsys.readouterr().err
    assert (kept / "config.yaml").read_text() == "precious: 1\n"
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert search_main(["--output", str(other), "--epochs", "2"]) == 2  # no search there: --resume is no way out
    assert "it holds no search to resume: move its files or choose another --output" in capsys.readouterr().err
    gone = tmp_path / "no-sweep"
    assert search_main(["--resume", "--latency-table", "rtx2080", "--sweep-latency-weight", "0,0.1", "--output",
                        str(gone)]) == 2  # it started a new sweep
    assert "nothing to resume" in capsys.readouterr().err and not gone.exists()
    for argv, words in ((["--data-root", str(tmp_path / "missing")], "--data-root"),
                        (["--batch-size", "4000"], "--batch-size 4000")):
        out = tmp_path / "new"
        assert search_main(argv + ["--output", str(out)]) == 2
        assert words in capsys.readouterr().err and not out.exists()


def test_numbers_are_plain_ascii_and_counts_fit_a_c_int():
    for bad in (" 2", "1_0", "\u0663", "\uff11", "nan", "0x10", "1e999"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a finite number"):
            _cli.finite_float(bad)
    assert _cli.finite_float("1e-3") == 0.001 and _cli.finite_float(".5") == 0.5
    assert _cli.positive_int(str(_cli.INT_MAX)) == _cli.INT_MAX
    with pytest.raises(argparse.ArgumentTypeError, match="between 1 and 2147483647"):
        _cli.positive_int("99999999999999999999")  # was an overflow deep inside (batch sizes, repeats)
    for fn in (_cli.positive_int, _cli.seed, _cli.input_size):  # int() refuses > 4300 digits; not echoed whole
        with pytest.raises(argparse.ArgumentTypeError) as e:
            fn("9" * 5000)
        assert len(str(e.value)) < 200


def test_train_checks_the_dataset_before_making_the_output_folder(tmp_path, capsys):
    from hwnas.train import main as train_main

    out = tmp_path / "run"
    assert train_main(["--model", "cdnet", "--data-root", str(tmp_path / "missing"), "--output", str(out)]) == 2
    assert "dataset folder does not exist" in capsys.readouterr().err
    assert not out.exists()  # no empty train.log that would make the corrected rerun refuse "not empty"


@pytest.mark.parametrize("argv", [["search", "--latency-table", ""], ["latency", "show", ""],
                                  ["latency", "validate", "--table", " "], ["report", "model", "--latency-table", ""],
                                  ["latency", "predict", "--spec", "rtx2080", "--name", "x", "--calibrate-on", ""]])
def test_an_empty_table_name_is_refused_not_read_as_no_table(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert hwnas_main(argv) == 2
    assert "expected a latency table name (e.g. rtx2080) or a table JSON path" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_broken_symlink_inside_an_output_path_is_refused_up_front(tmp_path):
    from hwnas.errors import OutputError

    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputError, match="a broken or looping symbolic link in the path, --output"):
        _cli.check_output_file(tmp_path / "broken" / "sub" / "x.npz")
