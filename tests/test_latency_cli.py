"""``python -m hwnas.latency``: show/build/validate with --json, and clear errors (tiny shapes, no timing asserts)."""
from __future__ import annotations

import json

import pytest
from test_latency import make_table

from hwnas.latency import save_table
from hwnas.latency.__main__ import main
from hwnas.space import PRESETS


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


@pytest.mark.parametrize("runtime", ["cpp", "onnxruntime"])
def test_build_on_a_runtime_with_calibration_then_validate(runtime: str, tmp_path, capsys) -> None:
    from hwnas.deploy import runtime_status

    ok, why = runtime_status(runtime)
    if not ok:
        pytest.skip(why)
    out = tmp_path / "tiny.json"
    assert main(["build", "--batch-size", "1", "--input-size", "32x16", "--width-mult", "0.25", "--space", "cnet",
                 "--warmup", "1", "--repeats", "3", "--runtime", runtime, "--calibrate", "3", "--name", "tiny",
                 # offset: 3 repeats of tiny networks on a busy machine can order the timings against the sums, and
                 # an affine fit then (rightly) refuses a negative scale; the affine fit is tested in
                 # test_latency_runtime.py on exact numbers
                 "--composition", "offset", "--output", str(tmp_path), "--json", "--no-progress"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["runtime"] == info["provenance"]["runtime"] == runtime
    assert info["provenance"]["details"]["heap"]["allocator"] in ("glibc", "unknown")
    comp = info["composition"]
    assert comp["method"] == "offset" and len(comp["calibration"]) == 3 and comp["scale"] == 1.0
    calibrated = {p["genotype"] for p in comp["calibration"]}
    # the written table loads as it is, records its runtime, and is what the search's --latency-table reads
    from hwnas.latency import read_table
    from hwnas.search.__main__ import _load_table
    from hwnas.search.report import table_summary

    assert read_table(out).provenance.runtime == runtime
    table = _load_table(str(out), "cnet")
    assert table_summary(table)["runtime"] == runtime
    g = PRESETS["cnet-top1"]
    assert table.genotype_latency_ms(g) == pytest.approx(comp["scale"] * table.raw_genotype_latency_ms(g)
                                                         + comp["offset_ms"])
    assert main(["validate", "--table", str(out), "--archs", "3", "--space", "cnet", "--warmup", "1",
                 "--repeats", "3", "--json", "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["context"]["runtime"] == runtime and result["context"]["composition"]["calibration_genotypes"] == 3
    assert not calibrated & {a["genotype"] for a in result["archs"]}
    assert all(a["predicted_ms"] == pytest.approx(comp["scale"] * a["raw_sum_ms"] + comp["offset_ms"])
               for a in result["archs"])
    assert main(["validate", "--table", str(out), "--space", "cnet", "--genotypes", "cnet-top1", "cnet:3-5,3-5,3-5,3-5,3-5,3-5",
                 "--warmup", "1", "--repeats", "3", "--json", "--no-progress"]) == 0
    assert [a["genotype"] for a in json.loads(capsys.readouterr().out)["archs"]][1] == "cnet:3-5,3-5,3-5,3-5,3-5,3-5"


@pytest.mark.parametrize("command", [["build", "--batch-size", "1", "--name", "x"], ["validate", "--table", "cpu"]])
def test_unknown_runtime_is_refused(command: list[str], capsys) -> None:
    assert main([*command, "--runtime", "tensorrt"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "'tensorrt', --runtime, expected one of 'eager', 'cpp', 'onnxruntime', " \
                                         "'openvino'" in err


def test_runtime_needs_cpu_fp32(capsys) -> None:
    assert main(["build", "--batch-size", "1", "--input-size", "32x16", "--dtype", "bf16", "--runtime", "onnxruntime",
                 "--name", "x"]) == 2
    assert "runtime onnxruntime on cpu in bf16, --runtime, expected --device cpu and fp32" in capsys.readouterr().err


def test_timer_choice_is_checked() -> None:
    from hwnas.latency.measure import resolve_timer

    assert resolve_timer("auto", "cpu", 1) == "thread_cpu"
    assert resolve_timer("auto", "cpu", 2) == "wall"
    assert resolve_timer("auto", "cuda", None) == "cuda_events"
    with pytest.raises(ValueError, match="needs exactly 1 CPU thread"):
        resolve_timer("thread_cpu", "cpu", 4)
    with pytest.raises(ValueError, match="expected --device cuda"):
        resolve_timer("cuda_events", "cpu", 1)
