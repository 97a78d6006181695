"""Bad latency tables and spec sheets are refused on load with one ``<what>, <where>, <expected>`` line (exit 2),
never an internal error, a non-finite result or a silently converted number."""
from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
from test_latency import make_table
from test_latency_runtime import COMP

from hwnas.latency import LatencyTable, LatencyTableError, read_table, save_table, shipped_tables
from hwnas.latency.__main__ import main
from hwnas.latency.predict import (
    MAX_LAUNCH_US,
    MEM_BW_RANGE_GBS,
    PRIOR,
    SPECS_DIR,
    TFLOPS_RANGE,
    calibrate,
    list_specs,
    load_spec,
    predict_table,
)
from hwnas.latency.schema import MAX_ENTRY_MS, MIN_NETWORK_MS, Setting, from_dict, to_dict

BIG = 10**400  # a JSON integer no float can hold


@pytest.fixture()
def table() -> dict:
    return to_dict(make_table())


@pytest.fixture()
def composed() -> dict:
    return to_dict(replace(make_table(), composition=COMP))


def _refused(d: dict, message: str) -> str:
    with pytest.raises(LatencyTableError) as err:
        from_dict(d)
    text = str(err.value)
    assert message in text, text
    assert "\n" not in text
    return text


def _zero(d: dict) -> dict:
    for e in d["fixed"] + d["layers"]:
        e["latency_ms"] = 0
    return d


# 1. a table in which some genotype costs 0 ms ------------------------------------------------------------------
def test_all_zero_table_is_refused(table: dict) -> None:
    _refused(_zero(table), "fastest cnet genotype sums to 0 ms (fixed parts + the fastest entry of each layer), "
                           "latency table layers, expected every genotype to cost at least 1e-06 ms")


def test_zero_entries_with_a_positive_total_still_load(table: dict) -> None:
    for e in table["layers"]:
        if e["candidate"] == [3, 5, 1]:
            e["latency_ms"] = 0  # one free candidate per layer: genotypes still cost the fixed parts
    t = LatencyTable(from_dict(table))
    assert t.uniform_latency_ms("cdnet") > 0 and t.weight_for_pressure("cdnet", 4) > 0


def test_all_zero_table_fails_show_and_calibrate_with_one_line(table: dict, tmp_path, capsys) -> None:
    path = tmp_path / "zero.json"
    path.write_text(json.dumps(_zero(table)))
    for argv in (["show", str(path)], ["calibrate", "--table", str(path), "--spec", "t4"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: fastest cnet genotype sums to 0 ms") and err.count("\n") == 1, err


# 2. numbers: JSON numbers only, finite as a float ---------------------------------------------------------------
@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["layers"][0].update(latency_ms=BIG), "latency entry is an integer too large for a float, latency "
                                                      "table layers[0].latency_ms, expected a finite number"),
    (lambda d: d["fixed"][0].update(iqr_ms=BIG), "latency entry is an integer too large for a float"),
    (lambda d: d["setting"].update(width_mult=BIG), "width_mult is an integer too large for a float, latency table "
                                                    "setting.width_mult, expected a finite number > 0"),
    (lambda d: d["layers"][0].update(latency_ms="4.1"), "layers[0].latency_ms is '4.1' (not a JSON number), latency "
                                                        "table layers[0].latency_ms, expected a finite number"),
    (lambda d: d["layers"][0].update(latency_ms=True), "layers[0].latency_ms is True (not a JSON number)"),
    (lambda d: d["setting"].update(width_mult=True), "setting.width_mult is True (not a JSON number)"),
    (lambda d: d["setting"].update(width_mult="1.0"), "setting.width_mult is '1.0' (not a JSON number)"),
    (lambda d: d["setting"].update(width_mult=1e300), "width_mult 1e+300, latency table setting.width_mult, "
                                                      "expected at most 16"),
    (lambda d: d["setting"].update(batch_size=10**30), "latency table setting.batch_size, expected an integer "
                                                       "from 1 to 2147483647"),
    (lambda d: d["setting"].update(resolution=[160000000, 16]), "setting.resolution, expected height and width "
                                                                "multiples of 16 (>= 16, at most 4096)"),
])
def test_numbers_must_be_json_numbers_a_float_can_hold(table: dict, mutate, message: str) -> None:
    mutate(table)
    _refused(table, message)


def test_composition_numbers_must_be_json_numbers(composed: dict) -> None:
    d = copy.deepcopy(composed)
    d["composition"]["scale"] = BIG
    _refused(d, "scale is an integer too large for a float, latency table composition.scale")
    d = copy.deepcopy(composed)
    d["composition"]["offset_ms"] = "-1.5"
    _refused(d, "composition.offset_ms is '-1.5' (not a JSON number), latency table composition.offset_ms")
    d = copy.deepcopy(composed)
    d["composition"]["calibration"][0]["measured_ms"] = True
    _refused(d, "composition.calibration[0].measured_ms is True (not a JSON number)")


# 3./4. compositions and values that make latencies negative or overflow ------------------------------------------
def test_offset_that_makes_latencies_negative_is_refused(composed: dict) -> None:
    assert from_dict(composed).composition.offset_ms == -1.5  # a fitted negative offset is fine
    composed["composition"]["offset_ms"] = -1e6
    _refused(composed, "fastest cnet genotype composes to")
    _refused(composed, "latency table composition, expected a scale and offset_ms that keep every latency at "
                       "least 1e-06 ms (offset_ms >=")
    composed["composition"]["offset_ms"] = -1e300
    _refused(composed, "offset_ms -1e+300, latency table composition.offset_ms, expected a finite number of ms from "
                       "-1e+09 to 1e+09")


def test_tiny_scale_that_makes_every_latency_vanish_is_refused(composed: dict) -> None:
    composed["composition"]["scale"] = 1e-300
    composed["composition"]["offset_ms"] = 0
    _refused(composed, "fastest cnet genotype composes to 2.191e-297 ms (1e-300 x raw sum 2191 ms +0 ms)")


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["layers"][0].update(latency_ms=1e308), "latency entry is 1e+308, latency table layers[0].latency_ms, "
                                                        "expected a finite number of milliseconds >= 0 (at most 1e+09)"),
    (lambda d: d["fixed"][2].update(latency_ms=MAX_ENTRY_MS * 2), "latency entry is 2000000000.0"),
    (lambda d: d["layers"][1].update(iqr_ms=1e308), "latency table layers[1].iqr_ms"),
    (lambda d: d["composition"].update(scale=1e308), "scale 1e+308, latency table composition.scale, expected a "
                                                     "finite number > 0 (at most 1e+06)"),
    (lambda d: d["composition"].update(offset_ms=1e308), "latency table composition.offset_ms"),
    (lambda d: d["composition"]["calibration"][0].update(measured_ms=1e-300),
     "measured_ms 1e-300, latency table composition.calibration[0].measured_ms, expected a finite number of ms from "
     "1e-06 to 1e+10"),
    (lambda d: d["composition"]["calibration"][1].update(table_sum_ms=1e308), "table_sum_ms 1e+308"),
])
def test_values_that_overflow_a_network_sum_are_refused(composed: dict, mutate, message: str) -> None:
    mutate(composed)
    _refused(composed, message)


def test_largest_accepted_values_keep_every_figure_finite(table: dict) -> None:
    for e in table["fixed"] + table["layers"]:
        e["latency_ms"] = MAX_ENTRY_MS
    table["composition"] = {"method": "affine", "scale": 1e6, "offset_ms": 1e9, "calibration": [
        {"genotype": "cnet:3-5,3-5,3-5,3-5,3-5,3-5", "table_sum_ms": 1e10, "measured_ms": MIN_NETWORK_MS}]}
    t = LatencyTable(from_dict(table))
    import math
    assert math.isfinite(t.uniform_latency_ms("cdnet")) and t.weight_for_pressure("cdnet", 4) > 0
    assert math.isfinite(t.data.composition.fit_mape)


# 5. threads ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("threads", [-5, 0, 10**6])
def test_threads_must_be_a_positive_count(table: dict, threads: int) -> None:
    table["setting"]["threads"] = threads
    _refused(table, f"threads {threads}, latency table setting.threads, expected null or an integer from 1 to 4096")


def test_threads_null_or_positive_loads(table: dict) -> None:
    assert from_dict(table).setting.threads == 1
    table["setting"]["threads"] = None
    assert from_dict(table).setting.threads is None
    table["setting"]["threads"] = True
    _refused(table, "setting.threads is True, latency table setting.threads, expected a JSON int")


# 8. names, text and spaces --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a\nb/c", "a/b", "", "x" * 65, "-dash", "tab\there"])
def test_table_name_must_be_one_line_usable_as_a_file_name(table: dict, name: str) -> None:
    table["name"] = name
    text = _refused(table, "latency table name, expected 1-64 letters, digits, '.', '_' or '-' (one line, no path "
                           "separators: usable as a file name)")
    assert text.startswith(f"table name {name!r}"[:40])


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["device"].update(name="GPU\nerror: fake"), "device.name is 'GPU\\nerror: fake', latency table "
                                                            "device.name, expected one printable line"),
    (lambda d: d["device"].update(spec="t4\r"), "latency table device.spec, expected one printable line"),
    (lambda d: d["provenance"].update(date=""), "latency table provenance.date, expected one printable line"),
    (lambda d: d["provenance"]["software"].update(torch=2.1), "provenance.software.torch is 2.1, latency table "
                                                              "provenance.software.torch, expected a JSON str"),
    (lambda d: d["provenance"]["software"].update(torch={"a": 1}), "provenance.software.torch"),
    (lambda d: d.update(spaces=["cdnet", "cdnet"]), "space 'cdnet' listed 2 times, latency table spaces, expected "
                                                    "each space at most once"),
    (lambda d: d.update(spaces=[]), "spaces is [], latency table spaces, expected at least one of cnet, cdnet"),
])
def test_text_fields_and_spaces(table: dict, mutate, message: str) -> None:
    mutate(table)
    _refused(table, message)


# the shipped tables and spec sheets stay valid --------------------------------------------------------------------
def test_shipped_tables_and_specs_pass_the_checks() -> None:
    for name in shipped_tables():
        t = LatencyTable(read_table(name))
        for space in t.spaces:
            assert 0 < t.weight_for_pressure(space, 4) < 1e6
    lo, hi = TFLOPS_RANGE
    for key in list_specs():
        s = load_spec(key)
        assert all(lo <= v <= hi for v in [*s.matrix_tflops.values(), *s.vector_tflops.values()])
        assert MEM_BW_RANGE_GBS[0] <= s.mem_bw_gbs <= MEM_BW_RANGE_GBS[1] and 0 <= s.launch_overhead_us <= MAX_LAUNCH_US


# 6. spec sheets ------------------------------------------------------------------------------------------------
def _spec(tmp_path, **change) -> str:
    d = json.loads((SPECS_DIR / "t4.json").read_text())
    for k, v in change.items():
        if isinstance(v, dict) and isinstance(d.get(k), dict):
            d[k] = {**d[k], **v}
        else:
            d[k] = v
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(d))
    return str(path)


@pytest.mark.parametrize("change, message", [
    ({"vector_tflops": {"fp32": 0}}, "vector_tflops.fp32 0.0, spec sheet '{p}' vector_tflops.fp32, expected a peak in "
                                     "TFLOP/s from 0.001 to 100000"),
    ({"matrix_tflops": {"fp32": 0}}, "matrix_tflops.fp32 0.0, spec sheet '{p}' matrix_tflops.fp32"),
    ({"matrix_tflops": {"fp16": -65.0}}, "matrix_tflops.fp16 -65.0"),
    ({"matrix_tflops": {"fp16": 1e300}}, "matrix_tflops.fp16 1e+300"),
    ({"mem_bw_gbs": 1e-300}, "mem_bw_gbs 1e-300, spec sheet '{p}' mem_bw_gbs, expected a bandwidth in GB/s from 0.1 "
                             "to 100000"),
    ({"mem_bw_gbs": BIG}, "mem_bw_gbs is an integer too large for a float, spec sheet '{p}' mem_bw_gbs"),
    ({"mem_bw_gbs": "320"}, "mem_bw_gbs is '320' (not a JSON number), spec sheet '{p}' mem_bw_gbs"),
    ({"mem_bw_gbs": True}, "mem_bw_gbs is True (not a JSON number)"),
    ({"vector_tflops": {"fp32": BIG}}, "vector_tflops.fp32 is an integer too large for a float"),
    ({"launch_overhead_us": 1e308}, "launch_overhead_us 1e+308, spec sheet '{p}' launch_overhead_us, expected "
                                    "microseconds per kernel from 0 to 10000"),
    ({"launch_overhead_us": -1.0}, "launch_overhead_us -1.0"),
    ({"vector_tflops": {"fp32": 8.1, "fp16": "16.2"}}, "vector_tflops.fp16 is '16.2' (not a JSON number)"),
    ({"matrix_tflops": [1, 2]}, "matrix_tflops is [1, 2], spec sheet '{p}' matrix_tflops, expected a JSON object"),
    ({"kind": "tpu"}, "kind 'tpu', spec sheet '{p}' kind, expected cpu or cuda"),
    ({"name": "T4\nerror: x"}, "spec sheet '{p}' name, expected one printable line"),
    ({"sources": 5}, "sources is 5, spec sheet '{p}' sources, expected a list of strings"),
    ({"notes": {"a": 1}}, "notes is {{'a': 1}}, spec sheet '{p}' notes, expected a string"),
])
def test_bad_spec_sheets_are_refused_on_load(tmp_path, change: dict, message: str) -> None:
    path = _spec(tmp_path, **change)
    with pytest.raises(LatencyTableError) as err:
        load_spec(path)
    assert message.format(p=path) in str(err.value)


def test_spec_without_fp32_vector_peak_or_with_nan_is_refused(tmp_path) -> None:
    d = json.loads((SPECS_DIR / "t4.json").read_text())
    d["vector_tflops"] = {"fp16": 16.2}
    (tmp_path / "a.json").write_text(json.dumps(d))
    with pytest.raises(LatencyTableError, match="no fp32 entry in vector_tflops"):
        load_spec(tmp_path / "a.json")
    (tmp_path / "b.json").write_text((SPECS_DIR / "t4.json").read_text().replace("320.0", "NaN"))
    with pytest.raises(LatencyTableError, match="non-finite number NaN, spec sheet .*, expected finite numbers only"):
        load_spec(tmp_path / "b.json")


def test_predict_with_a_bad_spec_is_one_error_line(tmp_path, capsys) -> None:
    path = _spec(tmp_path, vector_tflops={"fp32": 0})
    argv = ["predict", "--spec", path, "--name", "p", "--output", str(tmp_path / "out"), "--width-mult", "0.25",
            "--input-size", "32x16", "--batch-size", "1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: vector_tflops.fp32 0.0, spec sheet") and err.count("\n") == 1, err


# 7. a fit that cannot be done -----------------------------------------------------------------------------------
def test_calibrate_refuses_zero_entries_with_one_error() -> None:
    spec = load_spec("a100")
    tiny = Setting(1, "fp32", (64, 32))
    synthetic = predict_table(spec, tiny, "synthetic", PRIOR)
    layers = tuple(replace(e, latency_ms=0.0) if e.key.layer == 2 else e for e in synthetic.layers)
    measured = replace(synthetic, layers=layers, provenance=replace(synthetic.provenance, kind="measured"))
    from_dict(to_dict(measured))  # the table itself is valid: every genotype still costs > 0 ms
    with pytest.raises(LatencyTableError, match=r"12 entries of 0 ms \(first layer2:.*\), latency table 'synthetic' "
                                                r"to calibrate on, expected measured latencies > 0 ms"):
        calibrate(measured, spec)


def test_saved_then_loaded_round_trip_still_works(tmp_path) -> None:
    path = save_table(replace(make_table(), composition=COMP), tmp_path / "ok.json")
    assert read_table(path).composition == COMP
