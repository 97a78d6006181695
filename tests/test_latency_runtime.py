"""Latency tables per runtime: the provenance's runtime field (old tables read as eager), the composition
(scale x raw sum + offset) in the JSON, in LatencyTable and in the search's expected latency, its fit, and the
calibration genotypes kept apart from validation. Tiny shapes; no assertion depends on timing accuracy."""
from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from test_latency import _value, make_table

from hwnas.deploy import RUNTIMES as DEPLOY_RUNTIMES
from hwnas.errors import HwnasError, UsageError
from hwnas.latency import LatencyTable, LatencyTableError, read_table, save_table, shipped_tables
from hwnas.latency.composition import CalibrationPoint, Composition, fit_composition
from hwnas.latency.endtoend import random_genotypes
from hwnas.latency.schema import RUNTIMES, from_dict, to_dict
from hwnas.space import PRESETS, candidates

COMP = Composition(0.9, -1.5, "affine", (CalibrationPoint("cdnet:3-5-1,3-5-1,3-5-1,3-5-1,3-5-1,3-5-1", 700.0, 620.0, 1.0),
                                         CalibrationPoint("cdnet:7-9-2,7-9-2,7-9-2,7-9-2,7-9-2,7-9-2", 800.0, 719.0, 2.0)))


def test_runtime_names_are_the_deploy_runtimes() -> None:
    assert RUNTIMES == DEPLOY_RUNTIMES


def test_runtime_round_trips_and_old_tables_read_as_eager(tmp_path) -> None:
    data = make_table()
    data = replace(data, provenance=replace(data.provenance, runtime="onnxruntime"))
    path = save_table(data, tmp_path / "ort.json")
    assert json.loads(path.read_text())["provenance"]["runtime"] == "onnxruntime"
    assert read_table(path).provenance.runtime == "onnxruntime"
    assert LatencyTable(read_table(path)).runtime == "onnxruntime"
    old = to_dict(make_table())
    del old["provenance"]["runtime"]  # a table written before the field existed
    assert from_dict(old).provenance.runtime == "eager"
    for name in shipped_tables():  # every shipped table still loads; all of them timed (or predict) eager PyTorch
        t = read_table(name)
        assert t.provenance.runtime == "eager"
        assert t.composition.method == ("affine" if name == "cpu" else "none")  # cpu: rebuilt with a composition


def test_bad_runtime_and_composition_name_the_field() -> None:
    d = to_dict(make_table())
    d["provenance"]["runtime"] = "tensorrt"
    with pytest.raises(LatencyTableError, match=r"'tensorrt', latency table provenance.runtime, expected one of "
                                                r"eager, cpp, onnxruntime, openvino"):
        from_dict(d)
    d = to_dict(replace(make_table(), composition=COMP))
    d["composition"]["scale"] = 0
    with pytest.raises(LatencyTableError, match=r"scale 0.0, latency table composition.scale, expected a finite "
                                                r"number > 0"):
        from_dict(d)
    d = to_dict(replace(make_table(), composition=COMP))
    d["composition"]["calibration"][1]["genotype"] = "cdnet:3-3-1"
    with pytest.raises(LatencyTableError, match=r"composition.calibration\[1\].genotype"):
        from_dict(d)


def test_composition_round_trips_and_composes_every_sum(tmp_path) -> None:
    raw = LatencyTable(make_table())
    data = replace(make_table(), composition=COMP)
    path = save_table(data, tmp_path / "c.json")
    table = LatencyTable(read_table(path))
    assert read_table(path).composition == COMP
    assert table.raw_fixed_ms == raw.fixed_ms == 10.0
    assert table.fixed_ms == pytest.approx(0.9 * 10.0 - 1.5)
    for name in ("cdnet-top2", "cnet-top1"):
        g = PRESETS[name]
        hand = 10.0 + sum(_value(layer, c) for layer, c in enumerate(g.layers))
        assert table.raw_genotype_latency_ms(g) == pytest.approx(hand)
        assert table.genotype_latency_ms(g) == pytest.approx(0.9 * hand - 1.5)
        n = len(candidates(g.space))
        onehot = torch.nn.functional.one_hot(torch.tensor(g.indices()), n).double()
        assert float(table.expected_latency_ms(onehot, g.space)) == pytest.approx(0.9 * hand - 1.5)
    torch.testing.assert_close(table.raw_matrix("cdnet"), raw.matrix("cdnet"))
    # the search's expected latency: still linear in the probabilities, gradient scaled by the composition
    probs = torch.full((6, 12), 1 / 12, dtype=torch.float64, requires_grad=True)
    table.expected_latency_ms(probs, "cdnet").backward()
    torch.testing.assert_close(probs.grad, 0.9 * raw.matrix("cdnet"))


@pytest.mark.parametrize("method", ["affine", "offset", "none"])
def test_fit_recovers_a_known_composition(method: str) -> None:
    sums = [10.0, 14.0, 18.0, 22.0, 26.0]
    scale, offset = (0.8, 2.0) if method == "affine" else (1.0, -0.7)
    pts = [CalibrationPoint(f"g{i}", s, scale * s + offset) for i, s in enumerate(sums)]
    fit = fit_composition(pts, method)
    if method == "none":
        assert (fit.scale, fit.offset_ms, fit.method) == (1.0, 0.0, "none") and fit.calibration == tuple(pts)
        return
    assert fit.method == method
    assert fit.scale == pytest.approx(scale) and fit.offset_ms == pytest.approx(offset)
    assert fit.fit_mape == pytest.approx(0.0, abs=1e-12)


def test_fit_minimises_relative_error_and_rejects_nonsense() -> None:
    pts = [CalibrationPoint("a", 10.0, 11.0), CalibrationPoint("b", 10.0, 9.0)]
    fit = fit_composition(pts, "affine")  # equal sums: no scale to fit, the offset alone
    assert fit.method == "offset" and fit.scale == 1.0
    assert fit.offset_ms == pytest.approx((1 / 121 - 1 / 81) / (1 / 121 + 1 / 81))  # weights 1/m^2
    with pytest.raises(LatencyTableError, match="composition fitted on 2 calibration genotypes, expected a positive "
                                                "scale"):
        fit_composition([CalibrationPoint("a", 10.0, 20.0), CalibrationPoint("b", 20.0, 10.0)], "affine")
    assert fit_composition([CalibrationPoint("a", 10.0, 12.0)], "affine").method == "offset"  # one point: no scale


@pytest.mark.parametrize("field,value", [("measured_ms", float("nan")), ("measured_ms", 0.0),
                                         ("table_sum_ms", -3.0), ("table_sum_ms", float("inf"))])
def test_fit_refuses_bad_timings_naming_the_point(field: str, value: float) -> None:
    good = [CalibrationPoint("a", 10.0, 11.0), CalibrationPoint("b", 20.0, 19.0)]
    bad = replace(good[1], **{field: value})
    for method in ("affine", "offset", "none"):
        with pytest.raises(HwnasError, match=rf"{field} {value!r} of genotype b, composition calibration\[1\], "
                                             "expected a finite number of ms > 0"):
            fit_composition([good[0], bad], method)


def test_fit_refuses_an_unknown_method() -> None:
    with pytest.raises(UsageError, match="unknown composition method 'median', --composition, expected one of "
                                         "affine, offset, none"):
        fit_composition([CalibrationPoint("a", 10.0, 11.0)], "median")


def test_validation_draws_apart_from_the_calibration_genotypes() -> None:
    first = random_genotypes("cdnet", 5, seed=0)
    kept = random_genotypes("cdnet", 5, seed=0, exclude=first[:2])
    assert not set(kept) & set(first[:2])
    assert kept[:3] == first[2:]  # the same stream, the excluded ones skipped
