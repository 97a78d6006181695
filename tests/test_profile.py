"""FLOP/param counting: hand-computed counts, a thop cross-check, and the seed's Tables 3 and 5."""
import json

import pytest
import thop
import torch
from torch import nn

import hwnas
from hwnas.profile import MacCountAnalysis, profile_model
from hwnas.report.__main__ import main as report_main
from hwnas.report.flops import matches, table_row
from hwnas.report.paper_tables import table3_rows, table5_rows
from hwnas.space import CBlock


def test_cblock_flops_by_hand():
    block = CBlock(32, 64, 3, 5).eval()  # mid 16, gate hidden 4, branches of 1 and 2 LiteConvs, projection shortcut
    h, w = 6, 4
    hw = h * w
    squeeze, restore, shortcut = 32 * 16 * hw, 16 * 64 * hw, 32 * 64 * hw
    liteconv = 16 * 16 * hw + 16 * 9 * hw
    gate = 16 * 4 + 4 * 16  # on the 1x1 pooled map, applied once per branch
    expected = squeeze + 3 * liteconv + 2 * gate + restore + shortcut
    assert MacCountAnalysis(block, (torch.zeros(1, 32, h, w),)).total() == expected


def _thop_conv_linear_macs(model, x):
    zero = lambda m, i, o: None  # noqa: E731
    custom = {nn.BatchNorm2d: zero, nn.BatchNorm1d: zero, nn.ReLU: zero, nn.MaxPool2d: zero, nn.AvgPool2d: zero,
              nn.AdaptiveAvgPool2d: zero, nn.Dropout: zero}
    macs, _ = thop.profile(model, inputs=(x,), custom_ops=custom, verbose=False)
    return macs


@pytest.mark.parametrize("name,options", [("cdnet", {}), ("cnet", {}), ("osnet", {"width_mult": 0.5})])
def test_thop_cross_check(name, options):
    model = hwnas.create_model(name, **options).eval()
    ours = profile_model(model, (128, 64), scope="inference").flops_m * 1e6
    theirs = _thop_conv_linear_macs(model, torch.zeros(1, 3, 128, 64))
    # thop adds one op per bias element (the gates' tiny 1x1 convs, OSNet's fc); fvcore counts MACs only
    assert abs(ours - theirs) / ours < 1e-3


@pytest.fixture(scope="module")
def table3():
    return [table_row(r) for r in table3_rows()]


def test_table3_all_rows_match(table3):
    assert len(table3) == 32
    bad = [(r["model"], r["width_mult"], r["input_size"], r["params_m"], r["flops_m"])
           for r in table3 if not (r["params_match"] and r["flops_match"])]
    assert not bad


def test_table3_headline_numbers(table3):
    top = next(r for r in table3 if r["model"] == "cdnet" and r["width_mult"] == 1.0 and r["input_size"] == [256, 128])
    assert f"{top['flops_m']:.1f}" == "948.8" and f"{top['params_m']:.1f}" == "1.8"


def test_table5_rows():
    rows = {r.model: table_row(r) for r in table5_rows(hwnas.list_models())}
    assert all(r["params_match"] and r["flops_match"] for r in rows.values())
    assert f"{rows['gdas']['flops_m']:.1f}" == "1109.2" and f"{rows['gdas']['params_m']:.1f}" == "4.0"
    assert f"{rows['cdnet']['flops_m']:.1f}" == "955.1" and f"{rows['cdnet']['params_m']:.1f}" == "1.8"
    assert f"{rows['resnet50_bot']['flops_m']:.1f}" == "4053.3" and f"{rows['resnet50_bot']['params_m']:.1f}" == "25.1"
    assert f"{rows['osnet']['flops_m']:.1f}" == "978.9" and rows["osnet"]["flops_match"]


def test_matches_uses_printed_precision():
    assert matches(4.875456, "4.88") and matches(948.77, "948.8") and not matches(948.7, "948.8")


def test_cli_json(capsys):
    assert report_main(["flops", "--model", "cdnet", "--width-mult", "0.5", "--input-size", "128x64",
                        "--scope", "backbone", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert set(rows[0]) >= {"model", "genotype", "width_mult", "input_size", "scope", "params_m", "flops_m"}
    assert rows[0]["input_size"] == [128, 64] and f"{rows[0]['flops_m']:.1f}" == "65.5"


def test_cli_bad_size(capsys):
    assert report_main(["flops", "--input-size", "256by128"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: bad value '256by128', --input-size, expected HEIGHTxWIDTH") and "Traceback" not in err
