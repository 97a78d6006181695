"""Genotypes: presets of the seed's Table 1, string/JSON round trips, the original format, bad files."""
import json

import pytest

from hwnas.space import PRESETS, Genotype, GenotypeError, load_genotype, resolve_genotype


def test_presets_match_table1_depths():
    depths = {name: g.depth for name, g in PRESETS.items()}
    assert depths == {"cnet-top1": 6, "cnet-top2": 6, "cnet-top3": 6, "cnet-top4": 6,
                      "cdnet-top1": 10, "cdnet-top2": 9, "cdnet-top3": 10, "cdnet-top4": 8}


def test_best_genotypes():
    assert PRESETS["cdnet-top2"].tostr() == "cdnet:3-5-1,3-7-2,5-7-2,5-9-1,5-7-2,5-7-1"
    assert PRESETS["cnet-top2"].tostr() == "cnet:5-7,7-9,7-9,7-9,7-9,3-5"


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_string_round_trip(name):
    g = PRESETS[name]
    assert Genotype.fromstr(g.tostr()) == g
    assert Genotype.from_indices(g.space, g.indices()) == g


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_json_round_trip(name, tmp_path):
    g = PRESETS[name]
    path = g.save(tmp_path / "g.json")
    assert load_genotype(path) == g
    assert resolve_genotype(str(path), g.space) == g


def test_reads_original_format(tmp_path):
    path = tmp_path / "orig.json"
    path.write_text(json.dumps({"layers": [[3, 5, 1], [3, 7, 2], [5, 7, 2], [5, 9, 1], [5, 7, 2], [5, 7, 1]],
                                "alphas1": [[0.1] * 12] * 6}))
    g = load_genotype(path)
    assert g == PRESETS["cdnet-top2"] and len(g.alphas) == 6
    cpath = tmp_path / "cnet.json"
    cpath.write_text(json.dumps({"layers": [[5, 7], [7, 9], [7, 9], [7, 9], [7, 9], [3, 5]]}))
    assert load_genotype(cpath) == PRESETS["cnet-top2"]


BAD = {
    "not json": ("{layers: oops", "not valid JSON"),
    "no layers": (json.dumps({"foo": 1}), "'layers'"),
    "five layers": (json.dumps({"layers": [[3, 5, 1]] * 5}), "has 5 layers, "),
    "kernel 4": (json.dumps({"layers": [[3, 4, 1]] + [[3, 5, 1]] * 5}), "kernel size 4"),
    "r 3": (json.dumps({"layers": [[3, 5, 3]] + [[3, 5, 1]] * 5}), "r=3"),
    "same kernels": (json.dumps({"layers": [[5, 5, 1]] + [[3, 5, 1]] * 5}), "not a candidate"),
    "not integers": (json.dumps({"layers": [["3", 5, 1]] + [[3, 5, 1]] * 5}), "list of integers"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_name_the_file_and_problem(case, tmp_path):
    text, message = BAD[case]
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(GenotypeError) as err:
        load_genotype(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_cnet_genotype_given_to_cdnet(tmp_path):
    path = PRESETS["cnet-top1"].save(tmp_path / "c.json")
    with pytest.raises(GenotypeError, match="a cnet genotype, .*expected a cdnet genotype") as err:
        load_genotype(path, space="cdnet")
    assert str(path) in str(err.value)
    with pytest.raises(GenotypeError, match="cnet genotype"):
        resolve_genotype("cnet-top1", "cdnet")


def test_missing_file_and_unknown_name():
    with pytest.raises(GenotypeError, match="neither a preset"):
        resolve_genotype("cdnet-top9", "cdnet")
    with pytest.raises(GenotypeError, match="cannot be read"):
        load_genotype("/nonexistent/g.json")


def test_bad_string():
    with pytest.raises(GenotypeError, match="expected"):
        Genotype.fromstr("resnet:1-2")
