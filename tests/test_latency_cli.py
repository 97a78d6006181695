"""``python -m hwnas.latency``: show/build/validate with --json, and clear errors (tiny shapes, no timing asserts)."""
from __future__ import annotations

import json

import pytest
from test_latency import make_table

from hwnas.latency import save_table
from hwnas.latency.__main__ import main


def test_show_json_has_the_contract_keys(tmp_path, capsys) -> None:
    path = save_table(make_table(), tmp_path / "t.json")
    assert main(["show", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"device", "provenance", "batch_size", "dtype"} <= set(info)
    assert info["batch_size"] == 2 and info["dtype"] == "fp32" and info["provenance"]["kind"] == "measured"
    assert info["per_space"]["cdnet"]["min_ms"] < info["per_space"]["cdnet"]["max_ms"]
    assert main(["show", str(path)]) == 0
    assert "batch 2, fp32, 64x32" in capsys.readouterr().out


def test_unknown_table_is_a_clear_error(capsys) -> None:
    assert main(["show", "no-such-table"]) == 2
    err = capsys.readouterr().err
    assert "no-such-table" in err and "rtx2080" in err


def test_build_then_validate_tiny(tmp_path, capsys) -> None:
    out = tmp_path / "tiny.json"
    assert main(["build", "--device", "cpu", "--batch-size", "1", "--input-size", "32x16", "--space", "cnet",
                 "--warmup", "1", "--repeats", "3", "--name", "tiny", "--output", str(tmp_path), "--json",
                 "--no-progress"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["spaces"] == ["cnet"] and info["provenance"]["kind"] == "measured" and info["threads"] == 1
    assert info["entries"] == 36 and info["provenance"]["details"]["repeats"] == 3
    result_path = tmp_path / "val" / "validation.json"
    assert main(["validate", "--table", str(out), "--archs", "3", "--space", "cnet", "--device", "cpu",
                 "--warmup", "1", "--repeats", "3", "--json", "--output", str(result_path.parent),
                 "--no-progress", "--threads", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["context"]["threads"] == 1
    assert (result_path.parent / "validation.png").stat().st_size > 10_000  # predicted vs measured scatter
    assert {"mape", "spearman"} <= set(result) and len(result["archs"]) == 3
    assert result["mape"] >= 0 and -1 <= result["spearman"] <= 1
    assert json.loads(result_path.read_text())["command"].startswith("python -m hwnas.latency validate")
    assert "| genotype |" in result_path.with_suffix(".md").read_text()
    assert main(["validate", "--table", str(out), "--space", "cdnet", "--archs", "2"]) == 2
    assert "no entries for space 'cdnet'" in capsys.readouterr().err


def test_timer_choice_is_checked() -> None:
    from hwnas.latency.measure import resolve_timer

    assert resolve_timer("auto", "cpu", 1) == "thread_cpu"
    assert resolve_timer("auto", "cpu", 2) == "wall"
    assert resolve_timer("auto", "cuda", None) == "cuda_events"
    with pytest.raises(ValueError, match="needs exactly 1 CPU thread"):
        resolve_timer("thread_cpu", "cpu", 4)
    with pytest.raises(ValueError, match="expected --device cuda"):
        resolve_timer("cuda_events", "cpu", 1)
