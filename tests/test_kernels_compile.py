"""The Triton kernels compile for a real GPU target (sm_90) without a GPU, through Triton's bundled ptxas.

The interpreter tests check what the kernels compute; this checks that they lower to a cubin with the
GPU tile sizes (a separate process: this test session imports triton in interpreter mode).
"""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(importlib.util.find_spec("triton") is None or
                    importlib.util.find_spec("triton.backends.nvidia") is None,
                    reason="needs triton (pip install 'hwnas[triton]') with its NVIDIA backend (ptxas)")
def test_kernels_compile_for_sm90():
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "benchmarks.compile_kernels", "--arch", "90", "--dtypes", "fp32,bf16",
                           "--channels", "16"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "compiled 18 kernel variants for sm_90" in proc.stdout
