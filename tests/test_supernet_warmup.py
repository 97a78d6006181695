"""benchmarks.supernet_warmup: the path-sampling schemes and a one-epoch smoke run (the full run is a benchmark)."""
from __future__ import annotations

import json

import pytest

from benchmarks import supernet_warmup as sw


@pytest.mark.parametrize("scheme", sw.SCHEMES)
def test_each_scheme_draws_the_paths_it_names(scheme):
    draw = sw.path_sampler(scheme, layers=6, n=12, k=2, seed=0)
    paths = [draw() for _ in range(200)]
    used = [{c for p in paths for c in p[layer]} for layer in range(6)]
    assert all(len(p) == 6 for p in paths)
    if scheme == "fixed":
        assert all(p == [[0]] * 6 for p in paths)
    elif scheme == "switch-2":
        assert all(p in ([[0]] * 6, [[1]] * 6) for p in paths) and {p[0][0] for p in paths} == {0, 1}
    elif scheme == "layer-2":
        assert all(u == {0, 1} for u in used) and any(len({row[0] for row in p}) == 2 for p in paths)
    else:
        k = 2 if scheme == "random-k" else 1
        assert all(len(row) == k and len(set(row)) == k for p in paths for row in p)
        assert all(u == set(range(12)) for u in used)
    again = sw.path_sampler(scheme, layers=6, n=12, k=2, seed=0)
    assert [again() for _ in range(200)] == paths  # seeded: the same paths in every run


def test_one_epoch_run_writes_the_report(tmp_path, capsys):
    out = tmp_path / "w"
    assert sw.main(["--epochs", "1", "--schemes", "fixed,random-k", "--output", str(out), "--no-progress"]) == 0
    payload = json.loads((out / "supernet_warmup.json").read_text())
    assert [r["scheme"] for r in payload["results"]] == ["fixed", "random-k"]
    fixed, rand = payload["results"]
    assert fixed["steps"] == rand["steps"] == 8 and len(fixed["train_acc"]) == 1
    assert fixed["steps_per_candidate"] == 8 and rand["steps_per_candidate"] < 8  # 2 of 12 per layer per step
    assert all(0 <= a <= 1 for r in payload["results"] for a in r["train_acc"])
    md = (out / "supernet_warmup.md").read_text()
    assert "| fixed |" in md and "chance = 0.031" in md and "torch thread" in md
    assert "random-k: training accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--schemes", "fixed,nope"], ["--schemes", "fixed,fixed"], ["--schemes", "fixed,"],
                                  ["--epochs", "0"]])
def test_bad_flags_are_clean_errors(argv, tmp_path, capsys):
    assert sw.main([*argv, "--output", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "expected" in err and "Traceback" not in err
    assert not (tmp_path / "w").exists()


def test_a_folder_with_other_files_is_refused(tmp_path, capsys):
    out = tmp_path / "w"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert sw.main(["--epochs", "1", "--schemes", "fixed", "--output", str(out), "--no-progress"]) == 2
    assert "holds other files (notes.txt)" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["notes.txt"]
