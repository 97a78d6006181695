"""A Ctrl-C while a command is still importing (torch takes seconds) ends quietly: hwnas._startup."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(args, cwd):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(cwd)])}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_ctrl_c_during_a_commands_imports_prints_interrupted_and_exits_130(tmp_path):
    # python -m pkg.cmd imports pkg first (sys.argv[0] == "-m" then), as python -m hwnas.search imports hwnas.search;
    # the interrupt arrives in the middle of that import, as a Ctrl-C during "import torch" does
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import hwnas\nraise KeyboardInterrupt\n")
    (pkg / "cmd.py").write_text("print('never runs')\n")
    r = _run(["-m", "pkg.cmd"], tmp_path)
    assert r.returncode == 130 and r.stderr == "interrupted\n" and r.stdout == ""
    # other errors keep their traceback (a broken install must stay diagnosable)
    (pkg / "__init__.py").write_text("import hwnas\nraise ImportError('broken install')\n")
    r = _run(["-m", "pkg.cmd"], tmp_path)
    assert r.returncode == 1 and "Traceback" in r.stderr and "broken install" in r.stderr


def test_a_program_that_imports_hwnas_keeps_pythons_behaviour(tmp_path):
    (tmp_path / "prog.py").write_text("import sys, hwnas\nassert sys.excepthook is sys.__excepthook__\n"
                                      "raise KeyboardInterrupt\n")
    r = _run(["prog.py"], tmp_path)
    assert r.returncode != 130 and "KeyboardInterrupt" in r.stderr


def test_what_counts_as_the_command_line():
    from hwnas._startup import started_from_command_line

    assert started_from_command_line("-m") and started_from_command_line("/venv/bin/hwnas")
    assert not started_from_command_line("train.py") and not started_from_command_line("") and \
        not started_from_command_line("/venv/bin/hwnas-tool")
