"""The command-line contract shared by every tool: one entry point, the same flags, one error boundary.

Bad options are refused before any work with ``error: <what>, <where>, <expected>`` on stderr, exit status 2 and
no traceback (hwnas._cli). Each row below is one kind of bad input for one command.
"""
from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from hwnas import _cli
from hwnas.cli import COMMANDS
from hwnas.cli import main as hwnas_main
from hwnas.errors import HwnasError, UsageError

SYN = ["--synthetic", "--synthetic-ids", "2", "--synthetic-images-per-id", "3"]

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
    (["train", "--model", "cdnet", "--input-size", "8x8", *SYN], "at least 13x13"),
    (["train", "--model", "cdnet", "--lr", "inf", *SYN], "--lr"),
    (["train", "--model", "cdnet", "--threads", "0", *SYN], "--threads"),
    (["train", "--model", "cdnet", "--device", "cuda", *SYN], "--device"),
    (["train", "--model", "cdnet", "--resume", *SYN], "--output"),
    (["train", "--model", "cdnet"], "--data-root"),
    (["evaluate", "--checkpoint", "missing.pt", *SYN], "missing.pt"),
    (["evaluate", "--checkpoint", "missing.pt", "--batch-size", "0", *SYN], "--batch-size"),
    (["evaluate", "--checkpoint", "missing.pt", "--device", "cuda", *SYN], "--device"),
    (["report", "flops", "--input-size", "8x8"], "at least 13x13"),
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
    from hwnas.latency.__main__ import _parser as latency_parser
    from hwnas.search.__main__ import build_parser as search_parser
    from hwnas.train import build_parser as train_parser

    roots = [search_parser(), train_parser(), evaluate_parser(), latency_parser("hwnas latency")]
    report = _cli.ArgumentParser(prog="hwnas report")
    sub = report.add_subparsers()
    for modname in ("hwnas.report.flops", "hwnas.report.model_report", "hwnas.report.tsne"):
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
