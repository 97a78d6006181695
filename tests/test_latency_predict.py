"""Roofline predictor: op tracing (FLOPs/bytes by hand), monotonicity, spec sheets, calibration round trip."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
from torch import nn

from hwnas.latency import LatencyTable, LatencyTableError
from hwnas.latency.predict import (
    PRIOR,
    Calibration,
    OpCost,
    calibrate,
    list_specs,
    load_spec,
    op_time_ms,
    ops_time_ms,
    predict_table,
    trace_ops,
)
from hwnas.latency.schema import Setting
from hwnas.space import Genotype
from hwnas.space.blocks import CBlock

TINY = Setting(1, "fp32", (64, 32))


def test_trace_conv_flops_and_bytes_by_hand() -> None:
    n, cin, cout, h, w = 2, 8, 16, 10, 6
    for k, groups, cls in ((1, 1, "dense"), (3, 1, "spatial"), (3, 8, "depthwise")):
        conv = nn.Conv2d(cin, cout if groups == 1 else cin, k, padding=k // 2, groups=groups, bias=False)
        ops = trace_ops(conv, [(n, cin, h, w)])
        assert len(ops) == 1 and ops[0].op_class == cls
        co = conv.out_channels
        assert ops[0].flops == 2 * n * co * h * w * (cin // groups) * k * k
        assert ops[0].bytes == 4 * (n * cin * h * w + conv.weight.numel() + n * co * h * w)


def test_trace_cblock_kernel_count_and_half_bytes() -> None:
    block = CBlock(16, 32, 3, 7)  # mid 8: squeeze, 1 + 3 LiteConvs, shared gate applied twice, restore, shortcut
    ops = trace_ops(block, [(1, 16, 8, 4)])
    convs = [o for o in ops if o.op_class != "memory"]
    assert len(convs) == 1 + 2 * (1 + 3) + 2 * 2 + 1 + 1
    assert sum(o.op_class == "depthwise" for o in convs) == 4
    half = trace_ops(CBlock(16, 32, 3, 7), [(1, 16, 8, 4)], dtype="fp16")
    assert [o.flops for o in half] == [o.flops for o in ops]
    assert sum(o.bytes for o in half) == pytest.approx(sum(o.bytes for o in ops) / 2)


def test_op_time_is_a_roofline_plus_launch() -> None:
    spec = load_spec("h100")
    cal = replace(PRIOR, launch_us=5.0)
    small = OpCost("x", "dense", 0.0, 0.0)
    assert op_time_ms(small, spec, cal, "fp32") == pytest.approx(5e-3)
    compute = OpCost("x", "dense", 1e12, 1.0)
    memory = OpCost("x", "memory", 1.0, 1e10)
    t_c = op_time_ms(compute, spec, cal, "fp32") - 5e-3
    assert t_c == pytest.approx(1e3 * 1e12 / (494.7e12 * cal.dense_compute))  # fp32 convs use TF32 on Hopper
    t_m = op_time_ms(memory, spec, cal, "fp32") - 5e-3
    assert t_m == pytest.approx(1e3 * 1e10 / (3350e9 * cal.memory))
    assert op_time_ms(replace(compute, flops=2e12), spec, cal, "fp32") > op_time_ms(compute, spec, cal, "fp32")
    assert op_time_ms(compute, spec, cal, "fp16") < op_time_ms(compute, spec, cal, "fp32")


def test_predicted_block_latency_grows_with_batch_and_depth() -> None:
    spec = load_spec("t4")

    def ms(k1: int, k2: int, batch: int) -> float:
        return ops_time_ms(trace_ops(CBlock(64, 256, k1, k2), [(batch, 64, 16, 8)]), spec, PRIOR, "fp32")

    assert ms(3, 5, 1) < ms(3, 5, 8) < ms(3, 5, 64)
    assert ms(3, 5, 8) < ms(3, 7, 8) < ms(5, 9, 8) < ms(7, 9, 8)


def test_predicted_table_is_valid_and_monotone_in_repeat() -> None:
    data = predict_table(load_spec("v100"), TINY, "v100-tiny")
    table = LatencyTable(data)
    assert data.provenance.kind == "predicted" and data.provenance.details["spec"] == "v100"
    assert data.setting.threads is None and set(table.spaces) == {"cnet", "cdnet"}
    m = table.matrix("cdnet")  # columns: 0..2 r=1 with (3,5) (3,7) (5,7); 3..5 the same with r=2
    assert bool((m[:, 3:6] > m[:, 0:3]).all()) and bool((m[:, 9:12] > m[:, 6:9]).all())
    fast = Genotype.fromstr("cnet:3-5,3-5,3-5,3-5,3-5,3-5")
    slow = Genotype.fromstr("cnet:7-9,7-9,7-9,7-9,7-9,7-9")
    assert table.genotype_latency_ms(fast) < table.genotype_latency_ms(slow)


def test_calibration_recovers_a_known_model() -> None:
    spec = load_spec("a100")
    truth = Calibration(0.3, 0.6, 0.2, 0.4, 0.1, 0.3, 0.5, launch_us=12.0, source="truth")
    synthetic = predict_table(spec, TINY, "synthetic", truth)
    synthetic = replace(synthetic, provenance=replace(synthetic.provenance, kind="measured"))
    fit = calibrate(synthetic, spec)
    assert fit.entries == 6 * 12 + 4
    assert fit.mape < 0.01
    with pytest.raises(LatencyTableError, match="calibrate on a measured one"):
        calibrate(predict_table(spec, TINY, "p", truth), spec)


def test_spec_sheets_have_sources_and_refuse_unsupported_dtypes(tmp_path) -> None:
    assert {"rtx2080", "t4", "v100", "a100", "h100", "jetson-orin"} <= set(list_specs())
    for key in list_specs():
        spec = load_spec(key)
        assert spec.sources and all(s.startswith("https://") for s in spec.sources)
        assert spec.mem_bw_gbs > 0 and spec.peak_flops("dense", "fp32") > 0
    with pytest.raises(LatencyTableError, match="does not support bf16"):
        load_spec("rtx2080").peak_flops("dense", "bf16")
    bad = tmp_path / "bad.json"
    d = {"key": "x", "name": "x", "kind": "cuda"}
    bad.write_text(json.dumps(d))
    with pytest.raises(LatencyTableError, match="field 'matrix_tflops' is missing"):
        load_spec(bad)


def test_vectorised_fit_model_matches_op_sum() -> None:
    from hwnas.latency.predict import _VectorModel

    spec, cal = load_spec("jetson-orin"), replace(PRIOR, launch_us=7.0)
    entries = [trace_ops(CBlock(16, 32, k1, 9), [(2, 16, 8, 4)]) for k1 in (3, 5, 7)]
    want = [ops_time_ms(e, spec, cal, "fp16") for e in entries]
    assert _VectorModel(entries, spec, "fp16")(cal).tolist() == pytest.approx(want, rel=1e-12)
