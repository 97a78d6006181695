"""benchmarks.compare_tables: a predicted table's error against a measured one, on hand-made tables with known
errors (no timing)."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from benchmarks import compare_tables
from hwnas.errors import LatencyTableError
from hwnas.latency.expected import LatencyTable
from hwnas.latency.io import read_table, save_table
from hwnas.latency.schema import Provenance
from hwnas.latency.validate import random_genotypes


def _measured(factor_fixed: float, factor_r2: float):
    """The shipped h100 prediction rewritten as a 'measured' table whose r = 2 entries are factor_r2 times slower
    and whose fixed parts are factor_fixed times slower (so the prediction's errors are known exactly)."""
    pred = read_table("h100")
    layers = tuple(dataclasses.replace(e, latency_ms=e.latency_ms * (factor_r2 if e.key.candidate.r == 2 else 1.0))
                   for e in pred.layers)
    fixed = tuple(dataclasses.replace(e, latency_ms=e.latency_ms * factor_fixed) for e in pred.fixed)
    prov = Provenance("measured", pred.provenance.date, dict(pred.provenance.software), {"timer": "cuda_events"})
    return pred, dataclasses.replace(pred, name="fake-h200", provenance=prov, layers=layers, fixed=fixed)


def test_entry_errors_and_groups_are_exact() -> None:
    pred, meas = _measured(factor_fixed=2.0, factor_r2=4.0)
    res = compare_tables.compare(meas, pred)
    n_r1 = sum(1 for e in pred.layers if e.key.candidate.r == 1)
    n_r2 = len(pred.layers) - n_r1
    assert res["entries"] == len(pred.layers) + 4
    # fixed: 1/2 - 1 = -50%; r=2: 1/4 - 1 = -75%; r=1 exact
    assert res["mape"] == pytest.approx((4 * 0.5 + n_r2 * 0.75) / res["entries"])
    by_r = {g["r"]: g for g in res["by_repeat"]}
    assert by_r[1]["mape"] == pytest.approx(0.0) and by_r[2]["median_error"] == pytest.approx(-0.75)
    assert by_r[1]["entries"] == n_r1 and by_r[2]["entries"] == n_r2
    assert all(f["error"] == pytest.approx(-0.5) for f in res["fixed"])
    assert {g["layer"] for g in res["by_layer"]} == set(range(6))


def test_end_to_end_against_a_validation_result(tmp_path: Path) -> None:
    pred, meas = _measured(factor_fixed=1.0, factor_r2=1.0)
    table = LatencyTable(pred)
    genotypes = random_genotypes("cdnet", 5, seed=1)
    validation = {"table": "fake-h200", "mape": 0.01, "archs": [
        {"genotype": g.tostr(), "measured_ms": 1.25 * table.genotype_latency_ms(g), "predicted_ms": 0.0}
        for g in genotypes]}
    e2e = compare_tables.compare(meas, pred, validation)["end_to_end"]
    assert e2e["mape"] == pytest.approx(0.2) and e2e["spearman"] == pytest.approx(1.0)
    assert all(a["error"] == pytest.approx(-0.2) for a in e2e["archs"])


def test_cli_writes_markdown_and_json(tmp_path: Path, capsys) -> None:
    pred, meas = _measured(factor_fixed=1.5, factor_r2=1.0)
    path = save_table(meas, tmp_path / "fake.json")
    out = tmp_path / "cmp"
    assert compare_tables.main(["--measured", str(path), "--predicted", "h100", "--output", str(out)]) == 0
    data = json.loads((out / "table_comparison.json").read_text())
    assert data["measured"]["name"] == "fake-h200" and data["predicted"]["name"] == "h100"
    md = (out / "table_comparison.md").read_text()
    assert "MAPE" in md and "downsample1" in md and data["command"] in md
    assert compare_tables.main(["--measured", str(path), "--predicted", "h100",
                                "--validation", str(tmp_path / "missing.json")]) == 2
    assert "error: unreadable validation result" in capsys.readouterr().err


def test_settings_must_match() -> None:
    pred, meas = _measured(1.0, 1.0)
    other = dataclasses.replace(meas, setting=dataclasses.replace(meas.setting, batch_size=8))
    with pytest.raises(LatencyTableError, match="batch_size 8 vs 128"):
        compare_tables.compare(other, pred)
