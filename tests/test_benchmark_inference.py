"""benchmarks/inference.py: the runtimes side by side (tiny shapes; no assertion on speed) and its memory probe."""
from __future__ import annotations

import pytest

from benchmarks import inference
from hwnas.deploy import runtime_status


def test_runtimes_side_by_side_tiny(tmp_path, capsys) -> None:
    names = [r for r in ("eager", "cpp", "onnxruntime", "openvino") if runtime_status(r)[0]]
    out = tmp_path / "inference.md"
    assert inference.main(["--device", "cpu", "--batch-size", "2", "--input-size", "32x16", "--width-mult", "0.25",
                           "--runtimes", ",".join(names), "--threads", "1", "--rounds", "3", "--warmup", "1",
                           "--memory-runs", "0", "--heap", "default", "--output", str(out)]) == 0
    text = out.read_text()
    assert "| runtime | version | batch | threads |" in text and "load average" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "x |" in line]
    assert [r.split(" | ")[0].strip("| ") for r in rows] == names
    eager = next(r for r in rows if r.startswith("| eager"))
    assert "| 1.00x |" in eager


@pytest.mark.slow
def test_peak_memory_probe_runs_in_a_child_process() -> None:
    mb = inference.peak_memory_mb("eager", 0.25, 1, (32, 16), 1, 1)
    assert 0 <= mb < 4096
