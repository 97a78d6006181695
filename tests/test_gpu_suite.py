"""benchmarks/gpu_suite.sh on the CPU: the dry run lists every step with its budget and checks that each command
still imports and parses (and fails when one does not); the runner records ok / failed / timed-out / skipped
steps, keeps to its deadline and bundles everything into one archive."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from benchmarks import _suite_check

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "benchmarks" / "gpu_suite.sh"
STEPS = ["env", "setup", "gpu_tests", "search_step", "inference", "cpp_inference", "latency_build",
         "latency_validate", "latency_h100", "table5_data", "table5", "kernel_tests"]


def suite(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable)
    env.pop("OUT", None)
    return subprocess.run(["bash", str(SUITE), *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=ROOT)


@pytest.mark.slow
def test_dry_run_lists_budgeted_steps_and_checks_every_command(tmp_path: Path) -> None:
    proc = suite("--dry-run", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    listed = re.findall(r"^\s*\d+\. (\S+)\s+(\d+) s  (.+)$", proc.stdout, flags=re.M)
    assert [name for name, _, _ in listed] == STEPS
    total = sum(int(b) for _, b, _ in listed)
    assert total <= 540 - 10, f"the step budgets ({total} s) must leave the 9-minute deadline room for the archive"
    assert f"budgets sum to {total} s" in proc.stdout
    commands = [c for _, _, c in listed if "--internal" not in c]
    assert f"checked {len(commands)} commands: 0 failed" in proc.stdout
    assert proc.stdout.count("arguments parse") == len(commands) - 2  # the two pytest steps are collected instead
    assert re.search(r"^ok .*-m gpu.*\n\s+\d+/\d+ tests collected", proc.stdout, flags=re.M)
    assert "dry run ok" in proc.stdout
    assert not (tmp_path / "out").exists()  # nothing ran, nothing written


def test_dry_run_fails_when_a_command_rots(tmp_path: Path) -> None:
    steps = tmp_path / "steps.txt"
    steps.write_text("renamed_flag|10|$PY -m benchmarks.compare_tables --measured a --predicted b --no-such-flag\n"
                     "gone_module|10|$PY -m benchmarks.no_such_benchmark --device cuda\n"
                     "fine|10|$PY -m benchmarks.compare_tables --measured a --predicted b\n")
    proc = suite("--dry-run", "--steps", str(steps))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(r"^FAIL .*--no-such-flag\n.*unrecognized arguments: --no-such-flag", proc.stdout, flags=re.M)
    assert re.search(r"^FAIL .*no_such_benchmark.*\n.*No module named benchmarks.no_such_benchmark", proc.stdout,
                     flags=re.M)
    assert re.search(r"^ok .*compare_tables --measured a --predicted b$", proc.stdout, flags=re.M)
    assert "checked 3 commands: 2 failed" in proc.stdout and "dry run FAILED" in proc.stdout


def test_dry_run_refuses_budgets_over_the_deadline(tmp_path: Path) -> None:
    steps = tmp_path / "steps.txt"
    steps.write_text("a|300|true\nb|300|true\n")
    proc = suite("--dry-run", "--steps", str(steps))
    assert proc.returncode == 1 and "FAIL  budgets sum to 600 s" in proc.stdout


def test_runner_goes_past_failures_and_timeouts_and_bundles_one_archive(tmp_path: Path) -> None:
    steps = tmp_path / "steps.txt"
    steps.write_text("# comment lines and blank lines are skipped\n\n"
                     "good|3|echo '| a | b |' > $RES/search_step.md; echo done\n"
                     "bad|3|echo something broke; exit 3\n"
                     "hang|3|sleep 30\n"
                     "late|100|echo never\n")
    out = tmp_path / "out"
    proc = suite("--steps", str(steps), "--total", "17", str(out), timeout=60)  # 'late' finds < 5 s left
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [p.name for p in out.iterdir()] == ["gpu_suite.tar.gz"]  # one file comes back from the device
    with tarfile.open(out / "gpu_suite.tar.gz") as tar:
        names = set(tar.getnames())
        manifest = json.load(tar.extractfile("gpu_suite/manifest.json"))
        summary = tar.extractfile("gpu_suite/summary.md").read().decode()
    assert {"gpu_suite/logs/bad.log", "gpu_suite/results/search_step.md", "gpu_suite/steps.tsv"} <= names
    status = {s["name"]: (s["status"], s["exit_code"]) for s in manifest["steps"]}
    assert status == {"good": ("ok", 0), "bad": ("failed", 3), "hang": ("timeout", 124), "late": ("skipped", None)}
    assert manifest["elapsed_s"] <= 17 and manifest["deadline_s"] == 17
    assert manifest["command"].endswith(f"--total 17 {out}")
    assert "## results/search_step.md" in summary and "something broke" in summary
    assert summary in proc.stdout  # printed last, for the device call's output tail


def test_refuses_to_run_without_an_output_folder() -> None:
    proc = suite("--total", "20")
    assert proc.returncode == 2 and "error: no output folder" in proc.stderr


def test_checker_parses_subcommands_without_running_them() -> None:
    """The outermost parse_args stops the program: a subcommand CLI is checked, nothing is measured."""
    ok = _suite_check.check_command(f"{sys.executable} -m hwnas.latency validate --table x.json --archs 2")
    bad = _suite_check.check_command(f"{sys.executable} -m hwnas.latency validate --table x.json --archs two")
    assert ok == ("ok", "arguments parse")
    assert bad[0] == "FAIL" and "'two'" in bad[1] and "--archs" in bad[1]
    assert _suite_check.check_command("no-such-tool --flag")[0] == "warn"


def test_checker_refuses_abbreviated_flags() -> None:
    """``--out`` would parse as ``--output`` by prefix: a renamed flag (maybe with a new meaning) must be noticed.
    hwnas's parsers refuse abbreviations themselves (allow_abbrev=False); the checker also catches a parser that
    does not."""
    status, detail = _suite_check.check_command(
        f"{sys.executable} -m hwnas.latency validate --table x.json --out y")
    assert status == "FAIL" and "unrecognized arguments: --out" in detail
    import argparse

    plain = argparse.ArgumentParser()
    plain.add_argument("--output")
    assert _suite_check._abbreviated(["--out", "y"], [plain]) == ["--out"]


def test_carried_wheels_cover_the_pure_python_requirements() -> None:
    """--prepare-wheels carries hwnas's pure-Python requirements (fvcore, thop, omegaconf ...), not the image's
    binary stack (torch, numpy ...)."""
    from benchmarks import _suite_wheels

    names = {name.lower() for name, _ in _suite_wheels.closure()}
    assert {"fvcore", "thop", "iopath", "yacs", "pytest-xdist"} <= names
    assert not names & {"torch", "numpy", "triton", "scipy", "onnxruntime", "hwnas"}
