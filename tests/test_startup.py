"""A Ctrl-C while a command is still importing (torch takes seconds) ends quietly: hwnas._startup."""
import os
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# delivers SIGINT to the process at a fixed moment: when "torch" is first imported (after hwnas's own package,
# inside the command module's imports), as a user's Ctrl-C during those seconds does
SITECUSTOMIZE = '''
import os, signal, sys

class _CtrlCAtTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, _CtrlCAtTorch())
'''


def _run(args, cwd):
    (cwd / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), str(REPO)])}
    # a shell starts background jobs with SIGINT ignored (and Python then keeps it ignored, as it should): the
    # child gets the default disposition a terminal's foreground command has, whatever ran this test
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_ctrl_c_during_a_commands_imports_prints_interrupted_and_exits_130(tmp_path):
    for args in (["-m", "hwnas.search", "--help"], ["-m", "hwnas.cli", "train", "--help"]):
        r = _run(args, tmp_path)
        assert (r.returncode, r.stderr, r.stdout) == (130, "interrupted\n", ""), args


def test_a_program_that_imports_hwnas_keeps_pythons_ctrl_c(tmp_path):
    (tmp_path / "prog.py").write_text("import hwnas.search\n")
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("import hwnas.search\n")
    (tmp_path / "mypkg" / "tool.py").write_text("")
    for args in (["prog.py"], ["-m", "mypkg.tool"]):
        r = _run(args, tmp_path)
        assert r.returncode == -signal.SIGINT and "KeyboardInterrupt" in r.stderr, args


def test_the_command_itself_gets_keyboard_interrupt_back():
    """hwnas._cli.command restores Python's handler, so the command's own clean-up runs on Ctrl-C."""
    from hwnas import _startup

    previous = signal.getsignal(signal.SIGINT)
    try:
        signal.signal(signal.SIGINT, _startup._interrupted_while_starting)
        _startup.restore_interrupt()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_what_counts_as_a_command():
    from hwnas._startup import started_as_command

    py = "/usr/bin/python3"
    assert started_as_command("/venv/bin/hwnas", [py, "/venv/bin/hwnas", "search"])
    assert started_as_command("-m", [py, "-m", "hwnas.search"]) and started_as_command("-m", [py, "-mbenchmarks.x"])
    assert started_as_command("-m", [py, "-X", "dev", "-m", "benchmarks.search_quality", "--quick"])
    assert not started_as_command("-m", [py, "-m", "mypkg.tool"]) and not started_as_command("-m", [py, "-m"])
    assert not started_as_command("train.py", [py, "train.py"]) and not started_as_command("", [])
    assert not started_as_command("/venv/bin/hwnas-tool", [py, "/venv/bin/hwnas-tool"])
