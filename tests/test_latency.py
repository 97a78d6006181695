"""Latency tables: schema validation and errors, loading, expected latency and its gradient, genotype latency."""
from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from hwnas.latency import LatencyTable, LatencyTableError, load_table, read_table, save_table, shipped_tables
from hwnas.latency.schema import (
    Device,
    FixedEntry,
    LayerEntry,
    Provenance,
    Setting,
    TableData,
    expected_fixed_shapes,
    expected_layer_keys,
    from_dict,
    to_dict,
)
from hwnas.space import PRESETS, Genotype, candidates

SETTING = Setting(2, "fp32", (64, 32), 1.0, "fblneck", 1)
CDNET_ORDER = {c: i for i, c in enumerate(candidates("cdnet"))}


def _value(layer: int, cand) -> float:
    """Distinct, known latency per (layer, candidate): lets tests recompute sums by hand."""
    return 100.0 * (layer + 1) + 10.0 * cand.r + cand.k1 + 0.1 * cand.k2


def make_table(spaces: tuple[str, ...] = ("cnet", "cdnet"), setting: Setting = SETTING) -> TableData:
    keys = {k: None for s in spaces for k in expected_layer_keys(setting, s)}
    from hwnas.space.macro import macro_spec

    spec = macro_spec(setting.width_mult)
    layers = tuple(LayerEntry(k, spec.layers[k.layer].out_channels, _value(k.layer, k.candidate), 0.01) for k in keys)
    fixed = tuple(FixedEntry(p, s, 1.0 + i, None) for i, (p, s) in enumerate(expected_fixed_shapes(setting).items()))
    prov = Provenance("measured", "2026-01-01T00:00:00Z", {"torch": torch.__version__}, {"repeats": 3})
    return TableData("unit", Device("test cpu", "cpu"), prov, setting, spaces, fixed, layers)


@pytest.fixture()
def table_dict() -> dict:
    return to_dict(make_table())


def test_round_trip_and_atomic_save(tmp_path) -> None:
    data = make_table()
    path = save_table(data, tmp_path / "t.json")
    assert to_dict(read_table(path)) == to_dict(data)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    again = save_table(read_table(path), tmp_path / "again.json")
    assert again.read_text() == path.read_text()
    assert LatencyTable(from_dict(json.loads(path.read_text()))).fixed_ms == 10.0


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("setting"), "setting is missing, latency table setting, expected"),
        (lambda d: d["setting"].update(dtype="fp8"), "setting.dtype is 'fp8', latency table setting.dtype, expected one of fp32, fp16, bf16"),
        (lambda d: d["setting"].update(resolution=[250, 128]), "multiples of 16"),
        (lambda d: d["setting"].update(batch_size="8"), "setting.batch_size is '8', latency table setting.batch_size, expected a JSON int"),
        (lambda d: d["provenance"].update(kind="guessed"), "provenance.kind"),
        (lambda d: d.update(schema_version=7), "schema version 7, latency table schema_version, expected version 1"),
        (lambda d: d["layers"][5].update(candidate=[3, 3, 1]), "[3, 3, 1] is not a candidate op, latency table layers[5].candidate, expected"),
        (lambda d: d["layers"][0].update(input_shape=[64, 8, 8]), "input shape [64, 8, 8], latency table layers[0].input_shape, expected what layer 0"),
        (lambda d: d["layers"][0].update(latency_ms=-1.0), "latency entry is -1.0, latency table layers[0].latency_ms, expected a finite number of milliseconds >= 0"),
        (lambda d: d["layers"][3].pop("latency_ms"), "layers[3].latency_ms is missing, latency table layers[3].latency_ms"),
        (lambda d: d["layers"].append(copy.deepcopy(d["layers"][0])), "duplicate entry for layer 0"),
        (lambda d: d["fixed"].pop(), "0 'head' entries, latency table fixed, expected exactly one"),
        (lambda d: d["fixed"][0].update(input_shape=[3, 1, 1]), "fixed[0].input_shape"),
        (lambda d: d["layers"][2].update(latency_ms=math.inf),
         "latency entry is Infinity, latency table layers[2].latency_ms, expected a finite number of milliseconds >= 0"),
        (lambda d: d["layers"][2].update(latency_ms=math.nan), "latency entry is NaN, latency table layers[2].latency_ms"),
        (lambda d: d["layers"][2].update(latency_ms=-math.inf), "latency entry is -Infinity"),
        (lambda d: d["fixed"][1].update(latency_ms=math.inf), "latency entry is Infinity, latency table fixed[1]"),
        (lambda d: d["layers"][0].update(iqr_ms=math.nan), "latency entry is NaN, latency table layers[0].iqr_ms"),
        (lambda d: d["setting"].update(width_mult=math.nan), "width_mult nan, latency table setting.width_mult"),
    ],
)
def test_malformed_tables_name_the_field(table_dict: dict, mutate, message: str) -> None:
    mutate(table_dict)
    with pytest.raises(LatencyTableError, match="latency table") as err:
        from_dict(table_dict)
    assert message in str(err.value)


def test_missing_entry_for_listed_space(table_dict: dict) -> None:
    table_dict["layers"] = [e for e in table_dict["layers"] if not (e["layer"] == 4 and e["candidate"] == [7, 9, 2])]
    with pytest.raises(LatencyTableError, match=r"no entry for layer 4 candidate \[7, 9, 2\] .*expected every "
                       r"candidate of space 'cdnet'"):
        from_dict(table_dict)


def test_file_errors_name_the_file(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LatencyTableError, match=r"not valid JSON.*bad.json"):
        read_table(bad)
    with pytest.raises(LatencyTableError, match=r"no latency table .*missing.json"):
        load_table(tmp_path / "missing.json")


def test_table_not_covering_space_or_setting_is_refused(tmp_path) -> None:
    path = save_table(make_table(("cnet",)), tmp_path / "cnet_only.json")
    table = load_table(path, space="cnet")
    assert table.spaces == ("cnet",)
    with pytest.raises(LatencyTableError, match="no entries for space 'cdnet'.*expected a table built for that space"):
        load_table(path, space="cdnet")
    with pytest.raises(LatencyTableError, match=r"input size 256x128, latency table 'unit' .*expected the table's 64x32"):
        table.require(resolution=(256, 128))
    with pytest.raises(LatencyTableError, match=r"width 0.5, latency table 'unit' .*expected the table's width 1.0"):
        table.require(width_mult=0.5)


@pytest.mark.parametrize("space", ["cnet", "cdnet"])
def test_expected_latency_matches_hand_sum_and_gradient(space: str) -> None:
    table = LatencyTable(make_table())
    cands = candidates(space)
    lut = torch.tensor([[_value(layer, c) for c in cands] for layer in range(6)], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    alpha = torch.randn(6, len(cands), generator=gen, dtype=torch.float64, requires_grad=True)
    probs = alpha.softmax(dim=-1)
    got = table.expected_latency_ms(probs, space)
    hand = sum(float(probs[layer, i].detach()) * float(lut[layer, i]) for layer in range(6) for i in range(len(cands)))
    assert got.shape == ()
    assert float(got.detach()) == pytest.approx(table.fixed_ms + hand, rel=1e-12)
    got.backward()
    # d/d alpha_li of sum_j p_lj L_lj = p_li (L_li - E_l[L])
    p = probs.detach()
    want = p * (lut - (p * lut).sum(dim=1, keepdim=True))
    torch.testing.assert_close(alpha.grad, want)


def test_expected_latency_follows_dtype_and_checks_shape() -> None:
    table = LatencyTable(make_table())
    probs = torch.full((6, 12), 1 / 12, dtype=torch.float32)
    assert table.expected_latency_ms(probs, "cdnet").dtype == torch.float32
    with pytest.raises(LatencyTableError, match=r"probs of shape \(6, 6\), latency table 'unit', expected \(6, 12\)"):
        table.expected_latency_ms(torch.zeros(6, 6), "cdnet")


def test_genotype_latency_and_one_hot_expectation_agree() -> None:
    table = LatencyTable(make_table())
    assert table.fixed_ms == pytest.approx(1.0 + 2.0 + 3.0 + 4.0)
    for name in ("cdnet-top2", "cnet-top2"):
        g = PRESETS[name]
        hand = table.fixed_ms + sum(_value(layer, c) for layer, c in enumerate(g.layers))
        assert table.genotype_latency_ms(g) == pytest.approx(hand)
        onehot = torch.nn.functional.one_hot(torch.tensor(g.indices()), len(candidates(g.space))).double()
        assert float(table.expected_latency_ms(onehot, g.space)) == pytest.approx(hand)


def test_cnet_candidates_share_cdnet_r1_entries() -> None:
    table = LatencyTable(make_table())
    cnet = Genotype.fromstr("cnet:3-5,3-7,5-7,3-9,5-9,7-9")
    cdnet = Genotype.fromstr("cdnet:3-5-1,3-7-1,5-7-1,3-9-1,5-9-1,7-9-1")
    assert table.genotype_latency_ms(cnet) == table.genotype_latency_ms(cdnet)


def test_shipped_tables_load_and_cover_both_spaces() -> None:
    names = shipped_tables()
    assert {"rtx2080", "t4", "v100", "a100", "h100", "jetson-orin", "cpu"} <= set(names)
    rtx = load_table("rtx2080", space="cdnet")
    s = rtx.data.setting
    assert (s.batch_size, s.dtype, s.resolution, s.width_mult) == (128, "fp32", (256, 128), 1.0)
    assert rtx.data.provenance.kind == "predicted" and rtx.data.device.spec == "rtx2080"
    assert load_table("cpu").data.provenance.kind == "measured"
    for name in names:
        t = load_table(name)
        assert set(t.spaces) == {"cnet", "cdnet"}
        fast = Genotype.fromstr("cdnet:3-5-1,3-5-1,3-5-1,3-5-1,3-5-1,3-5-1")
        slow = Genotype.fromstr("cdnet:7-9-2,7-9-2,7-9-2,7-9-2,7-9-2,7-9-2")
        assert t.genotype_latency_ms(fast) < t.genotype_latency_ms(slow), name
