"""Smoke test of ``python -m benchmarks.search_quality``: every stage at toy sizes, the report, and resumption."""
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from benchmarks import search_quality as sq
from benchmarks._quality.plan import Plan, full_plan, quick_plan, search_root
from benchmarks._quality.report import _compact_label, _text_box, evaluate_targets, place_labels
from benchmarks._quality.standalone import Recipe
from benchmarks._quality.status import status_report
from hwnas.errors import OutputError, UsageError
from hwnas.search.config import SyntheticData, short_config


def tiny_plan() -> Plan:
    search = short_config(width_mult=0.125, image_size=(32, 32), epochs=2, warmup_epochs=1, ids_per_batch=2,
                          alpha_milestones=(), checkpoint_every=0)
    data = SyntheticData(num_ids=4, images_per_id=8, num_cameras=2, image_size=(32, 32))
    return Plan(search=search, data=data, train_data=data,
                   recipe=Recipe(epochs=1, warmup_epochs=0, batch_size=8, image_size=(32, 32), width_mult=0.125),
                   random_n=3, latency_pressures=(0.0, 4.0), table_batch=1, table_repeats=3, latency_check_repeats=3,
                   bn_batches=1)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One full run of the tiny plan, from an empty folder (a minute on 2 cores): the tests below copy its folder
    and continue from there, as a user's second command does, instead of each running every stage again."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny-run")
    try:
        yield tiny_plan(), out, sq.run(tiny_plan(), out, None, progress=False, command="test")
    finally:
        torch.set_num_threads(before)


def _copy_run(tiny_run, dest: Path) -> Path:
    shutil.copytree(tiny_run[1], dest, dirs_exist_ok=True)
    return dest


@pytest.mark.slow
def test_benchmark_runs_every_stage_and_resumes(tiny_run, tmp_path, monkeypatch, one_thread):
    plan, payload = tiny_run[0], tiny_run[2]
    _copy_run(tiny_run, tmp_path)
    for suffix in ("json", "md", "png"):
        assert (tmp_path / f"search_quality.{suffix}").stat().st_size > 0
    rows = payload["rows"]
    kinds = [r["kind"] for r in rows]
    assert kinds.count("random") == 3 and kinds.count("preset") == 4 and kinds.count("searched") == 2
    assert sum(r["second_seed"] is not None for r in rows) >= 3  # the seed-spread genotypes
    for r in rows:
        assert 0.0 <= r["mAP"] <= 1.0 and 0.0 <= r["rank1"] <= 1.0 and r["latency_ms"] > 0
        assert 0.0 <= r["supernet_val_acc"] <= 1.0 and 0.0 <= r["train_acc"] <= 1.0
    assert set(payload["kendall_tau"]) >= {"supernet_val_acc_vs_mAP", "depth_vs_mAP", "train_acc_vs_mAP"}
    assert payload["latency_check"]["mape"] >= 0
    assert {r["train_device"] for r in rows} == {payload["environment"]["device"]}  # where each training finished
    assert "trainings finished on" not in (tmp_path / "search_quality.md").read_text()  # all on this machine
    for search in payload["searches"]:  # each search's decisiveness and weight are reported
        assert 0.0 <= search["mean_entropy_fraction"] <= 1.0 and search["latency_weight"] >= 0
    assert payload["searches"][0]["latency_weight"] == 0.0 and payload["searches"][1]["latency_weight"] > 0
    assert json.loads((tmp_path / "search_quality.json").read_text())["targets"]["summary"]
    # a second run trains and searches nothing again: every stage is read back from the output folder
    calls = []
    monkeypatch.setattr("hwnas.search.runner.run_search", lambda *a, **k: calls.append("search"))
    monkeypatch.setattr("benchmarks._quality.standalone.Trainer.fit", lambda *a, **k: calls.append("train"))
    monkeypatch.setattr(sq, "load_supernet", lambda *a, **k: calls.append("supernet"))  # scores: from the cache
    monkeypatch.setattr("benchmarks._quality.latency.check_end_to_end",
                        lambda *a, **k: calls.append("latency"))  # not timed again
    again = sq.run(plan, tmp_path, None, progress=False, command="test")
    assert calls == []
    assert [r["mAP"] for r in again["rows"]] == [r["mAP"] for r in rows]
    assert again["latency_check"] == payload["latency_check"]
    # --export: the results without checkpoints or datasets; a run continued from there (another machine, a later
    # session) searches, scores, times and trains nothing again and reports the same figures
    kept = tmp_path.parent / f"{tmp_path.name}-kept"
    assert sq.main(["--output", str(tmp_path), "--export", str(kept)]) == 0
    assert not list(kept.glob("**/*.pt")) and not (kept / "data-search").exists()
    assert sorted(p.name for p in kept.iterdir()) == ["latency_check.json", "latency_cpu_proxy.json", "search", "train"]
    continued = sq.run(plan, kept, None, progress=False, command="test")
    assert calls == [] and [r["mAP"] for r in continued["rows"]] == [r["mAP"] for r in rows]
    assert continued["latency_check"] == payload["latency_check"]
    next(kept.glob("search/*/supernet_scores.json")).write_text("{}")  # a score missing, no supernet kept
    with pytest.raises(UsageError, match=r"no supernet to score .* made by --export keeps the scores it had"):
        sq.run(plan, kept, None, progress=False, command="test")
    monkeypatch.undo()
    # corrupt caches (a kill, a full disk, a hand edit) are computed again, to the same figures, not a traceback
    scores = next(tmp_path.glob("search/*/supernet_scores.json"))
    scores.write_text(scores.read_text()[:40])
    results = sorted(tmp_path.glob("train/*/*/standalone.json"))
    results[0].write_text("{}")
    edited = json.loads(results[1].read_text())
    results[1].write_text(json.dumps({**edited, "mAP": 5.0}))  # a hand edit out of range: trained again, not 500%
    report = sorted(tmp_path.glob("search/*/p*/search_report.json"))[-1]  # a search with latency weight > 0
    report.write_bytes(b"\xff" + report.read_bytes()[:50])
    check = json.loads((tmp_path / "latency_check.json").read_text())  # timed on another CPU: timed again here
    (tmp_path / "latency_check.json").write_text(json.dumps({**check, "device": "another CPU"}))
    third = sq.run(plan, tmp_path, None, progress=False, command="test")
    assert json.loads((tmp_path / "latency_check.json").read_text())["device"] == payload["environment"]["device"]
    keys = ("label", "mAP", "rank1", "supernet_val_acc", "supernet_val_ce")
    assert [[r[k] for k in keys] for r in third["rows"]] == [[r[k] for k in keys] for r in rows]
    # the trainings' memory layout is not part of the recipe: finished trainings are reused, a missing one is
    # trained in NHWC and the report says how many rows finished so
    nhwc = dataclasses.replace(plan, channels_last=True)
    redo = next(tmp_path.glob("train/*/*/standalone.json"))
    redo.unlink()
    fourth = sq.run(nhwc, tmp_path, None, progress=False, command="test")
    assert json.loads(redo.read_text())["channels_last"] is True
    nhwc_rows = [r for r in fourth["rows"] if r["channels_last"]]
    assert 1 <= len(nhwc_rows) < len(rows) and not any(r["channels_last"] for r in third["rows"])
    assert f"{len(nhwc_rows)} of {len(rows)} rows finished in NHWC memory layout" in (
        tmp_path / "search_quality.md").read_text()
    # finished searches are not passed off as searches with another latency table
    other = json.loads((tmp_path / "latency_cpu_proxy.json").read_text())
    other["name"] = "another_table"
    (tmp_path / "another_table.json").write_text(json.dumps(other))
    with pytest.raises(UsageError, match="ran with latency table 'latency_cpu_proxy'"):
        sq.run(plan, tmp_path, tmp_path / "another_table.json", progress=False, command="test")


@pytest.mark.slow
def test_workers_give_the_same_results_as_one_process(tiny_run, tmp_path, one_thread):
    """--workers 2: the searches and trainings run in two processes with the same results as in one. The run
    continues a copy of the one-process run without one of its searches and half of its trainings."""
    plan, serial = tiny_run[0], tiny_run[2]
    table = tiny_run[1] / "latency_cpu_proxy.json"  # the same measured table: the same latency weights
    out = _copy_run(tiny_run, tmp_path / "parallel")
    shutil.rmtree(next(out.glob("search/*/p4")))  # the search at latency weight > 0
    redo = sorted(out.glob("train/*/*"))[::2]
    for folder in redo:
        shutil.rmtree(folder)
    parallel = sq.run(plan, out, table, progress=False, command="test", workers=2)
    assert len(redo) >= 6 and all((f / "standalone.json").is_file() for f in redo)
    assert [s["genotype"] for s in parallel["searches"]] == [s["genotype"] for s in serial["searches"]]
    assert [(r["label"], r["mAP"], r["rank1"], r["train_acc"]) for r in parallel["rows"]] == \
        [(r["label"], r["mAP"], r["rank1"], r["train_acc"]) for r in serial["rows"]]
    assert parallel["environment"]["workers"] == 2


def _small_market_split(monkeypatch):
    """The "market" test split at toy size: the generator's Market-1501 counts, shrunk (the same code path)."""
    import hwnas.data.synthetic as syn

    for name, value in (("MARKET_TEST_IDS", 6), ("MARKET_QUERY", 12), ("MARKET_GALLERY_REAL", 30),
                        ("MARKET_DISTRACTORS", 3), ("MARKET_JUNK", 2), ("MARKET_TEST_FILES", 47)):
        monkeypatch.setattr(syn, name, value)


@pytest.mark.slow
def test_market_test_set_scores_the_same_trainings_again(tiny_run, tmp_path, monkeypatch, one_thread):
    """--test-set market: no training again; each finished training's checkpoint is scored on the larger test split,
    cached beside it and kept by --export; the proxy's own scores stay in the report."""
    from benchmarks._quality import testset
    from benchmarks._quality.export import export_results
    from hwnas import load_checkpoint_model
    from hwnas.errors import CheckpointError
    from hwnas.training import evaluate

    _small_market_split(monkeypatch)
    plan, serial = tiny_run[0], tiny_run[2]
    out = _copy_run(tiny_run, tmp_path / "run")
    market = dataclasses.replace(plan, test_set="market")
    monkeypatch.setattr("benchmarks._quality.standalone.Trainer.fit", lambda *a, **k: pytest.fail("trained again"))
    payload = sq.run(market, out, None, progress=False, command="test")
    rows, before = payload["rows"], {r["label"]: r for r in serial["rows"]}
    assert [r["label"] for r in rows] == list(before)
    for r in rows:  # the proxy's scores kept; the market ones from the checkpoint of the same training
        assert r["test_set"] == "market" and r["proxy_test"]["mAP"] == before[r["label"]]["mAP"]
        assert 0.0 <= r["mAP"] <= 1.0 and (r["second_seed"] is None) == (before[r["label"]]["second_seed"] is None)
    folder = next(out.glob(f"train/*/{rows[0]['genotype'].replace(':', '_').replace(',', '_')}-seed0"))
    data = testset.reid_data(out / testset.MARKET_DATA_FOLDER)
    assert len(data.query) == 12 and len({item[1] for item in data.query}) == 6
    again = evaluate(load_checkpoint_model(folder / "last.pt"), data, market.recipe.train_config(0), torch.device("cpu"))
    assert again["mAP"] == rows[0]["mAP"]
    md = (out / "search_quality.md").read_text()
    assert "test split of Market-1501's size" in md and "the same trainings on the proxy's own test split" in md
    # the training images are the same bytes as the proxy's (the trainings are the same trainings)
    own, big = out / "data-standalone" / "bounding_box_train", out / testset.MARKET_DATA_FOLDER / "bounding_box_train"
    assert sorted(f.read_bytes() for f in own.iterdir()) == sorted(f.read_bytes() for f in big.iterdir())
    # a second run and a run continued from an export score nothing again
    monkeypatch.setattr(testset, "evaluate", lambda *a, **k: pytest.fail("scored again"))
    assert [r["mAP"] for r in sq.run(market, out, None, progress=False, command="test")["rows"]] == \
        [r["mAP"] for r in rows]
    kept = tmp_path / "kept"
    assert sq.main(["--output", str(out), "--export", str(kept)]) == 0
    assert len(list(kept.glob("train/*/*/eval-market.json"))) == len(list(out.glob("train/*/*/standalone.json")))
    assert [r["mAP"] for r in sq.run(market, kept, None, progress=False, command="test")["rows"]] == \
        [r["mAP"] for r in rows]
    # a score that is not this training's (trained again) or is gone needs the checkpoint, which an export lacks
    scores = sorted(kept.glob("train/*/*/eval-market.json"))
    scores[0].write_text(json.dumps({**json.loads(scores[0].read_text()), "trained": {"mAP": 0.5}}))
    scores[1].unlink()
    lines = status_report(market, kept)
    assert sum(line.startswith("  market score unusable") and line.endswith("the run refuses it") for line in lines) == 1
    assert sum(line.startswith("  trained, not yet scored on the market test set") for line in lines) == 1, lines
    assert any(line.startswith("note: 2 finished training(s) have no usable market score") for line in lines)
    with pytest.raises(UsageError, match="no checkpoint to score on the market test set"):
        sq.run(market, kept, None, progress=False, command="test")
    # a score reached through a symbolic link is not this run's: computed again (the link replaced, not its target)
    target = tmp_path / "elsewhere.json"
    first = next(out.glob("train/*/*/eval-market.json"))
    target.write_text(json.dumps({**json.loads(first.read_text()), "mAP": 0.999}))
    first.unlink()
    first.symlink_to(target)
    monkeypatch.undo()
    _small_market_split(monkeypatch)
    relinked = sq.run(market, out, None, progress=False, command="test")
    assert [r["mAP"] for r in relinked["rows"]] == [r["mAP"] for r in rows]
    assert not first.is_symlink() and json.loads(target.read_text())["mAP"] == 0.999
    # a checkpoint of another training (another genotype) is refused, not scored under this training's name
    a, b = sorted(out.glob("train/*/*/last.pt"))[:2]
    shutil.copyfile(b, a)
    (a.parent / "eval-market.json").unlink()
    with pytest.raises(CheckpointError, match="genotype 'cdnet:.*', not 'cdnet:"):
        sq.run(market, out, None, progress=False, command="test")
    # an export that cannot be written whole writes nothing
    blocked = tmp_path / "blocked"
    (blocked / scores[2].relative_to(kept)).mkdir(parents=True)
    with pytest.raises(OutputError, match="not a file in the export folder"):
        export_results(kept, blocked)
    assert [p for p in blocked.rglob("*") if p.is_file()] == []
    # a proxy dataset folder is not taken for the market one (same training images, another test split); a file or
    # a broken link where the dataset goes is refused before generating anything
    from hwnas.search.runner import synthetic_dataset

    with pytest.raises(OutputError, match="not the synthetic dataset of these settings"):
        synthetic_dataset(out / "data-standalone", plan.train_data, market_test_sizes=True)
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    for where, what in (("a-file", "not a folder"), ("dangling", "broken symbolic link")):
        with pytest.raises(OutputError, match=what):
            synthetic_dataset(tmp_path / where, plan.train_data, market_test_sizes=True)
    assert not (tmp_path / "nowhere").exists() and not list(tmp_path.glob(".dangling*"))


def _row(label, kind, lat, mAP, second=None):
    return {"label": label, "kind": kind, "genotype": label, "latency_ms": lat, "mAP": mAP,
            "second_seed": None if second is None else {"mAP": second}}


def test_targets_on_hand_made_rows():
    rows = [_row(f"random {i}", "random", 10.0 + i, 0.1 * i) for i in range(1, 9)]  # mAP 0.1 .. 0.8
    rows[0]["second_seed"] = {"mAP": 0.12}
    rows += [_row("searched w=0", "searched", 17.5, 0.75, second=0.71), _row("cdnet-top2", "preset", 15.0, 0.5, 0.5)]
    t = evaluate_targets(rows)
    assert t["spread"]["mean"] == pytest.approx((0.02 + 0.04 + 0.0) / 3)
    assert t["random_mAP_p75"] == pytest.approx(0.625)
    assert t["target1_met"] is True and t["target2_met"] is True
    rows[-2]["mAP"] = 0.6  # now below the 75th percentile, and random 7 (17 ms, 0.7) is faster and better by > spread
    t = evaluate_targets(rows)
    assert t["target1_met"] is False and t["target2_met"] is False
    assert [d["random"] for d in t["dominated"]] == ["random 7"]
    assert "(at the 62nd percentile of the random ones)" in t["summary"][1]  # ordinal words


def test_target_1_with_several_search_seeds_is_met_only_by_every_seed():
    rows = [_row(f"random {i}", "random", 10.0 + i, 0.1 * i) for i in range(1, 9)]  # p75 = 0.625
    rows[0]["second_seed"] = {"mAP": 0.12}
    for seed, mAP in ((0, 0.75), (1, 0.8), (2, 0.55)):
        rows.append({**_row(f"searched w=0 s{seed}", "searched", 30.0, mAP), "latency_weight": 0.0,
                     "search_seed": seed})
    rows.append({**_row("searched w=0.1 s0", "searched", 9.0, 0.2), "latency_weight": 0.1, "search_seed": 0})
    t = evaluate_targets(rows)
    assert [(w["search_seed"], w["met"]) for w in t["weight0"]] == [(0, True), (1, True), (2, False)]
    assert t["target1_met"] is False and t["weight0_percentile"] == pytest.approx(87.5)  # median of 87.5, 100, 62.5
    assert "NOT MET (met by 2 of 3 search seeds)" in t["summary"][1] and "seed 2 55.0% (62nd percentile, below)" in \
        t["summary"][1]
    rows[-2]["mAP"] = 0.7
    assert evaluate_targets(rows)["target1_met"] is True


def test_plot_labels_of_nearby_points_do_not_overlap():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    assert _compact_label(["w=0.3 s0", "w=0.3 s2", "w=0 s1"]) == "w=0.3 s0, s2; w=0 s1"
    assert _compact_label(["cdnet-top2"]) == "cdnet-top2"
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.set_xlim(8, 17)
    ax.set_ylim(85, 96)
    points = [(8.24, 93.6), (8.39, 93.6), (8.41, 93.7), (8.47, 93.8), (8.62, 93.2), (8.30, 93.5), (16.9, 95.9)]
    notes = place_labels(ax, [(f"w=0.07421 s{i}", xy) for i, xy in enumerate(points)])
    renderer = fig.canvas.get_renderer()
    boxes = [_text_box(n, renderer) for n in notes]  # the text, without its leader line
    inside = ax.get_window_extent(renderer)
    assert len(notes) == len(points)
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert all(inside.x0 <= b.x0 and b.x1 <= inside.x1 and inside.y0 <= b.y0 and b.y1 <= inside.y1 for b in boxes)
    plt.close(fig)


def test_quick_plan_is_small_and_full_plan_is_the_main_job():
    quick, full = quick_plan(), full_plan()
    assert quick.random_n < full.random_n and full.random_n >= 24
    assert full.search == short_config() and full.latency_pressures[0] == 0.0 and len(full.latency_pressures) == 3
    assert dataclasses.replace(full, random_n=30).random_n == 30


def test_search_epochs_scale_the_schedule_and_key_the_searches(tmp_path):
    """--search-epochs N runs the main job's schedule for N epochs (warm-up and milestones at the same fractions,
    as hwnas.search --epochs does), into its own search folder."""
    from hwnas.search.config import with_epochs

    long = full_plan(128)
    assert long.search == with_epochs(short_config(), 128)
    assert long.search.epochs == 128 and long.search.warmup_epochs == 32 and long.search.alpha_milestones == (112,)
    assert dataclasses.replace(long, search=short_config()) == full_plan()
    assert search_root(long, tmp_path) != search_root(full_plan(), tmp_path)
    assert search_root(long, tmp_path).name.startswith("e128-")
    assert sq.build_parser().parse_args(["--search-epochs", "64"]).search_epochs == 64
    assert sq.main(["--search-epochs", "1", "--output", str(tmp_path / "x")]) == 2
    assert sq.main(["--workers", "100000", "--output", str(tmp_path / "x")]) == 2  # more than the CPU cores
    assert not (tmp_path / "x").exists()
    from benchmarks._quality.report import _schedule_name  # the report names the schedule it measured

    as_json = [json.loads(json.dumps(p.to_dict()))["search"] for p in (full_plan(), long, tiny_plan())]
    assert [_schedule_name(s) for s in as_json] == [
        "the main job's short schedule", "the main job's short schedule with 128 epochs: --search-epochs 128",
        "a reduced schedule"]
    assert not (tmp_path / "x").exists()


def test_search_options_and_seed_file_their_own_searches(tmp_path, monkeypatch):
    """--search-seeds, --share-weights, --derive and --derive-samples change the searches' folder (never reusing
    another setting's search) and are reported beside the schedule; the trainings' seeds stay the plan's."""
    from benchmarks._quality.report import _schedule_name, _search_options

    seen = []
    monkeypatch.setattr(sq, "run", lambda plan, *a, **k: seen.append(plan) or {"targets": {"summary": []}})
    assert sq.main(["--search-seeds", "2,0", "--share-weights", "io", "--derive", "score", "--derive-samples", "50",
                    "--output", str(tmp_path / "o")]) == 0
    plan = seen[0]
    assert (plan.search_seeds, plan.search.share_weights, plan.search.derive, plan.search.derive_samples) == (
        (2, 0), "io", "score", 50)
    assert search_root(plan, tmp_path) == search_root(plan, tmp_path, 2) != search_root(plan, tmp_path, 0)
    assert plan.seeds == full_plan().seeds and plan.recipe == full_plan().recipe
    roots = {search_root(dataclasses.replace(full_plan(), search=full_plan().search.replace(**c)), tmp_path)
             for c in ({}, {"share_weights": "io"}, {"derive": "score"}, {"derive": "score", "derive_samples": 10})}
    roots.add(search_root(full_plan(), tmp_path, 1))
    assert len(roots) == 5 and search_root(full_plan(), tmp_path, 0) in roots
    s = json.loads(json.dumps(plan.to_dict()))["search"]
    assert _schedule_name(s) == "the main job's short schedule"
    assert _schedule_name(plan.to_dict()["search"]) == "the main job's short schedule"  # as a fresh run has it
    assert _search_options(s).startswith("share_weights io, derive score") and "50 random" in _search_options(s)
    assert _search_options({}) == "share_weights none, derive alpha (argmax alpha)"  # reports of older runs
    for bad in (["--search-seeds", "-1"], ["--derive-samples", "0"], ["--search-seeds", "1,1"]):
        assert sq.main([*bad, "--output", str(tmp_path / "o")]) == 2


def test_recipe_tag_keys_the_training_folders():
    """A changed recipe never reuses another recipe's stand-alone results (they are filed under its tag)."""
    from pathlib import Path

    from benchmarks._quality.standalone import run_dir
    from hwnas.space.genotype import Genotype

    a, b = Recipe(), Recipe(epochs=12)
    g = Genotype.fromstr("cdnet:3-5-1,3-5-1,3-5-1,3-5-1,3-5-1,3-5-1")
    assert a.tag() == Recipe().tag() and a.tag().startswith("e160-") and b.tag().startswith("e12-")
    # the default recipe is the recorded run's: its export (benchmarks/results) continues under the default options
    assert a.tag() == "e160-6a9dbe20"
    assert Recipe(lr=0.01).tag() != a.tag() and run_dir(Path("r"), g, 0, a) != run_dir(Path("r"), g, 0, b)
    assert run_dir(Path("r"), g, 0, a).parent == Path("r") / a.tag()


def test_search_root_keys_the_searches_by_schedule_and_data(tmp_path):
    """A changed search schedule or search data never reuses another schedule's searches and supernet scores."""
    plan = tiny_plan()
    root = search_root(plan, tmp_path)
    assert root.parent == tmp_path / "search" and root.name.startswith("e2-")
    assert search_root(dataclasses.replace(plan, search=plan.search.replace(alpha_lr=0.5)), tmp_path) != root
    assert search_root(dataclasses.replace(plan, data=dataclasses.replace(plan.data, seed=7)), tmp_path) != root
    assert search_root(tiny_plan(), tmp_path) == root


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads child processes from /proc (Linux)")
def test_workers_stop_when_the_benchmark_process_is_killed(tmp_path):
    """SIGKILL (or SIGTERM) reaches only the parent; its spawned workers must not train on as orphans."""
    import os
    import signal
    import subprocess
    import sys
    import time

    code = ("import time; from benchmarks._quality.parallel import run_jobs; "
            "run_jobs(time.sleep, [(300,), (300,)], 2, 1)")
    root = Path(__file__).resolve().parents[1]
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=root,
                              env={**os.environ, "PYTHONPATH": str(root)})

    def children() -> list[int]:
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent.pid and fields[0] != "Z":
                found.append(int(stat.parent.name))
        return found

    def workers() -> list[int]:  # the spawned pool workers (not the resource tracker)
        pids = []
        for pid in children():
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmd and b"resource_tracker" not in cmd:
                pids.append(pid)
        return pids

    pool: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(workers()) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        pool = workers()
        assert len(pool) == 2, "the pool's two workers did not start"
        time.sleep(1.0)  # let the initializers start their watch threads
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 20
        alive = pool
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [p for p in pool if Path(f"/proc/{p}").exists()
                     and Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
        assert not alive, f"workers {alive} still running after their parent was killed"
    finally:
        if parent.poll() is None:
            parent.kill()
        for p in set(pool) | set(workers()):  # orphans have left the parent: kill them by pid
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_table_of_another_setting_is_refused_before_any_work(tmp_path, capsys):
    """The shipped cpu table is 128x64, width 1.0, batch 4: its milliseconds describe other networks."""
    assert sq.main(["--quick", "--latency-table", "cpu", "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: latency table for another setting (batch_size 4 instead of 2;") and \
        "--latency-table" in err and "/tables/cpu.json" in err
    assert not (tmp_path / "out").exists() and not Path("cpu").exists()  # nothing written, no ./cpu file


def test_results_dir_is_checked_before_the_run(tmp_path, capsys):
    from benchmarks._results_dir import copy_results, prepare_results_dir

    names = ["r.json", "r.md"]
    out = tmp_path / "out"
    out.mkdir()
    for n in names:
        (out / n).write_text(n)
    assert prepare_results_dir(None, out, names) is None
    assert prepare_results_dir(out, out, names) is None  # the output folder itself: nothing to copy
    (tmp_path / "busy" / "r.md").mkdir(parents=True)
    with pytest.raises(OutputError, match="a folder is in the way of a result file, --results-dir"):
        prepare_results_dir(tmp_path / "busy", out, names)
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(OutputError, match="broken or looping symbolic link, --results-dir"):
        prepare_results_dir(tmp_path / "dangling", out, names)
    with pytest.raises(OutputError, match="--results-dir"):
        prepare_results_dir(out / "r.json" / "sub", out, names)
    results = prepare_results_dir(tmp_path / "results" / "deep", out, names)
    assert results is not None and results.is_dir()  # created up front
    copy_results(out, results, names)
    assert [(results / n).read_text() for n in names] == names


def test_a_failed_benchmark_leaves_no_empty_results_dir(tmp_path, monkeypatch, capsys):
    """--results-dir is made before the run; a run that fails (or is interrupted) removes the folders it made."""
    def broken(*a, **k):
        raise UsageError("broken on purpose, --test, expected a test")

    monkeypatch.setattr(sq, "run", broken)
    results = tmp_path / "new" / "results"
    assert sq.main(["--quick", "--output", str(tmp_path / "out"), "--results-dir", str(results)]) == 2
    assert "broken on purpose" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither results/ nor new/ nor the output folder
    (tmp_path / "kept").mkdir()  # a folder that was there before stays
    assert sq.main(["--quick", "--output", str(tmp_path / "out"), "--results-dir", str(tmp_path / "kept")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]


@pytest.mark.slow
def test_several_search_seeds_run_one_search_each_and_report_every_seed(tiny_run, tmp_path, one_thread):
    """Seed 1 is added to a run of seed 0 (its search, training and scores are new; the rest is reused)."""
    plan = dataclasses.replace(tiny_plan(), latency_pressures=(0.0,), search_seeds=(0, 1), random_n=3)
    payload = sq.run(plan, _copy_run(tiny_run, tmp_path), None, progress=False, command="test")
    searched = [r for r in payload["rows"] if r["kind"] == "searched"]
    assert [(r["label"], r["search_seed"], r["latency_weight"]) for r in searched] == [
        ("searched w=0 s0", 0, 0.0), ("searched w=0 s1", 1, 0.0)]
    assert [s["search_seed"] for s in payload["searches"]] == [0, 1]
    assert len({s["folder"] for s in payload["searches"]}) == 2
    assert [w["search_seed"] for w in payload["targets"]["weight0"]] == [0, 1]
    assert set(payload["kendall_tau"]["supernet_by_search_seed"]) == {"0", "1"}
    md = (tmp_path / "search_quality.md").read_text()
    assert "search seed(s) 0, 1" in md and "search seeds)" in md and "| 1 | 0 |" in md


def test_status_reads_where_a_run_stands(tiny_run, tmp_path, capsys):
    """--status on a finished run judges the targets as the run did; on a run cut short it lists the trainings in
    flight and not started and marks the targets provisional. It writes nothing."""
    import re

    from benchmarks._quality.standalone import run_dir
    from hwnas.space.genotype import Genotype

    plan, _, payload = tiny_run
    run = _copy_run(tiny_run, tmp_path / "run")
    before = sorted((p, p.stat().st_mtime_ns) for p in run.rglob("*"))
    lines = status_report(plan, run)
    finished, total = map(int, re.match(r"(\d+) of (\d+) trainings finished", lines[0]).groups())
    assert finished == total == len({r["genotype"] for r in payload["rows"]}) + 3  # + the seed-spread trainings
    assert "final (every training finished)" in lines[-4] and lines[-3:] == [f"  {s}" for s in payload["targets"]["summary"]]
    maps = [float(line.split("%")[0]) for line in lines[1:1 + finished]]
    assert maps == sorted(maps, reverse=True)
    assert sorted((p, p.stat().st_mtime_ns) for p in run.rglob("*")) == before
    # one training cut after its first epoch, one not started, one search not finished
    rows = {r["label"]: r for r in payload["rows"]}
    cut, absent = (run_dir(run / "train", Genotype.fromstr(rows[k]["genotype"]), 0, plan.recipe)
                   for k in ("random 2", "random 3"))
    (cut / "standalone.json").unlink()
    (cut / "metrics.jsonl").write_text('{"epoch": 1}\n')
    shutil.rmtree(absent)
    shutil.rmtree(search_root(plan, run) / f"p{plan.latency_pressures[-1]:g}")
    lines = status_report(plan, run)
    text = "\n".join(lines)
    assert "1 search(es) not finished" in lines[0]
    assert f"in flight: random 2 ({rows['random 2']['genotype']}) seed 0, epoch 1 of 1 finished" in text
    assert "not started: random 3" in text and "PROVISIONAL (" in text
    assert not any("mAP" in line and "random 2 (" in line for line in lines)
    assert sq.main(["--status", "--output", str(run), "--quick"]) == 2  # another plan: the run refuses its table too
    assert "latency table for another setting" in capsys.readouterr().err
    (run / "latency_cpu_proxy.json").unlink()
    assert sq.main(["--status", "--output", str(run), "--quick"]) == 0  # nothing of that plan finished here
    shown = capsys.readouterr().out
    assert "0 of " in shown and "also holds trainings of other settings" in shown


def test_status_refuses_what_it_cannot_read(tmp_path, capsys):
    assert sq.main(["--status", "--output", str(tmp_path / "none")]) == 2
    assert "no such folder, --output" in capsys.readouterr().err
    assert sq.main(["--status", "--output", str(tmp_path), "--export", str(tmp_path / "keep")]) == 2
    assert "--status with --export" in capsys.readouterr().err
    assert sq.main(["--status", "--output", str(tmp_path), "--results-dir", str(tmp_path / "r")]) == 2
    assert "--results-dir with --status" in capsys.readouterr().err
    assert not (tmp_path / "keep").exists() and not (tmp_path / "r").exists()
    assert sq.main(["--status", "--output", str(tmp_path)]) == 2  # a folder without a run is not one
    assert "no benchmark run, --output" in capsys.readouterr().err
    (tmp_path / "latency_cpu_proxy.json").symlink_to(tmp_path / "gone.json")  # refused, not read as "no table"
    (tmp_path / "train" / "e1-x" / "g-seed0").mkdir(parents=True)
    (tmp_path / "train" / "e1-x" / "g-seed0" / "standalone.json").write_text("{}")
    assert sq.main(["--status", "--output", str(tmp_path)]) == 2
    assert "latency table" in capsys.readouterr().err


def test_report_says_where_trainings_finished_when_a_resumed_run_changed_machine():
    from benchmarks._quality.report import _device_note

    rows = [{"train_device": "CPU A (2 cores)"}] * 3 + [{"train_device": "CPU B (2 cores)"}, {}]
    assert _device_note(rows[:3], "CPU A (2 cores)") == ""
    assert _device_note(rows, "CPU B (2 cores)") == \
        "; trainings finished on CPU A (2 cores) (3 rows), CPU B (2 cores) (1 row), not recorded (1 row)"
    # the torch version is named only where it is not this run's
    rows = [{"train_device": "CPU A (2 cores)", "train_torch": "2.13.0+cpu"},
            {"train_device": "CPU A (2 cores)", "train_torch": "2.12.1+cpu"}]
    assert _device_note(rows[:1], "CPU A (2 cores)", "2.13.0+cpu") == ""
    assert _device_note(rows, "CPU A (2 cores)", "2.13.0+cpu") == \
        "; trainings finished on CPU A (2 cores) (1 row), CPU A (2 cores) with torch 2.12.1+cpu (1 row)"


def test_export_refuses_what_it_cannot_export(tmp_path, capsys):
    assert sq.main(["--output", str(tmp_path / "none"), "--export", str(tmp_path / "keep")]) == 2
    assert "no such folder, --output" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert sq.main(["--output", str(tmp_path / "empty"), "--export", str(tmp_path / "keep")]) == 2
    assert "no benchmark results to export, --output" in capsys.readouterr().err
    assert not (tmp_path / "keep").exists()  # made for the export, removed again when it failed
    run = tmp_path / "run"
    (run / "train" / "e1-x" / "g-seed0").mkdir(parents=True)
    (run / "train" / "e1-x" / "g-seed0" / "metrics.jsonl").write_text("{}\n")  # unfinished: not kept
    (run / "latency_cpu_proxy.json").write_text("{}")
    assert sq.main(["--output", str(run), "--export", str(run / "keep")]) == 2
    assert "export folder inside the run's folder, --export" in capsys.readouterr().err
    outside = tmp_path / "outside"
    (outside / "e1-x" / "h-seed0").mkdir(parents=True)
    (outside / "e1-x" / "h-seed0" / "standalone.json").write_text("{}")
    (run / "train" / "linked").symlink_to(outside / "e1-x")  # another folder's files are not this run's results
    (run / "latency_linked.json").symlink_to(outside / "e1-x" / "h-seed0" / "standalone.json")
    for extra in (["--workers", "2"], ["--results-dir", str(tmp_path / "r")], ["--quick"]):
        assert sq.main(["--output", str(run), "--export", str(tmp_path / "keep"), *extra]) == 2
        assert f"{extra[0]} with --export" in capsys.readouterr().err
    assert sq.main(["--output", str(run / "latency_cpu_proxy.json"), "--export", str(tmp_path / "keep")]) == 2
    assert "not a folder, --output" in capsys.readouterr().err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert sq.main(["--output", str(run), "--export", str(tmp_path / "mine")]) == 2
    assert "export folder holds other files" in capsys.readouterr().err
    assert sq.main(["--output", str(run), "--export", str(tmp_path / "keep")]) == 0
    assert [str(p.relative_to(tmp_path / "keep")) for p in (tmp_path / "keep").rglob("*") if p.is_file()] == \
        ["latency_cpu_proxy.json"]
    assert sq.main(["--output", str(run), "--export", str(tmp_path / "keep")]) == 0  # over an earlier export


def test_a_cached_training_result_must_be_this_training():
    from benchmarks._quality.standalone import result_problem
    from hwnas.space.genotype import Genotype

    g, recipe = Genotype.fromstr("cdnet:3-5-1,3-5-1,3-5-1,3-5-1,3-5-1,3-5-1"), Recipe(epochs=1)
    ok = {"genotype": g.tostr(), "seed": 0, "recipe": recipe.to_dict(), "rank1": 0.5, "mAP": 0.25, "mINP": 0.1,
          "train_acc": None, "train_s": 3.0}
    assert result_problem(ok, g, 0, recipe) is None
    for change, why in [({"genotype": "cdnet:3-7-1,3-5-1,3-5-1,3-5-1,3-5-1,3-5-1"}, "genotype"), ({"seed": 1}, "seed"),
                        ({"seed": True}, "seed"), ({"recipe": Recipe(epochs=2).to_dict()}, "another recipe"),
                        ({"mAP": 5.0}, "mAP 5.0"), ({"mAP": "high"}, "mAP 'high'"), ({"rank1": None}, "rank1 None"),
                        ({"mINP": -0.1}, "mINP"), ({"train_acc": 2}, "train_acc"), ({"train_s": -1}, "train_s")]:
        assert why in result_problem({**ok, **change}, g, 0, recipe), change


def test_a_cached_market_score_must_be_this_trainings():
    from benchmarks._quality.testset import market_problem

    recipe = Recipe(epochs=1)
    trained = {"genotype": "cdnet:3-5-1,3-5-1,3-5-1,3-5-1,3-5-1,3-5-1", "seed": 0, "mAP": 0.5, "rank1": 0.6,
               "train_s": 3.0}
    ok = {"genotype": trained["genotype"], "seed": 0, "recipe": recipe.to_dict(), "test_set": "market",
          "rank1": 0.4, "mAP": 0.2, "mINP": 0.1, "num_query": 3368, "num_gallery": 15913,
          "trained": {"mAP": 0.5, "rank1": 0.6, "train_s": 3.0}}
    assert market_problem(ok, trained, recipe) is None
    for change, why in [({"genotype": "cdnet:3-7-1,3-5-1,3-5-1,3-5-1,3-5-1,3-5-1"}, "genotype"), ({"seed": 1}, "seed"),
                        ({"seed": False}, "seed"), ({"seed": 0.0}, "seed"),
                        ({"recipe": Recipe(epochs=2).to_dict()}, "another recipe"), ({"test_set": "proxy"}, "test set"),
                        ({"trained": {"mAP": 0.4, "rank1": 0.6, "train_s": 3.0}}, "another training"),
                        ({"trained": None}, "another training"), ({"mAP": 5.0}, "mAP 5.0"),
                        ({"mAP": float("nan")}, "mAP nan"), ({"rank1": "high"}, "rank1 'high'"), ({"mINP": None}, "mINP"),
                        ({"num_query": 1}, "1 queries"), ({"num_gallery": 15913.0}, "15913.0 gallery images"),
                        ({"num_query": None}, "None queries")]:  # scored on another test split
        assert why in market_problem({**ok, **change}, trained, recipe), change


def test_report_names_the_tables_machine_when_the_run_moved():
    from benchmarks._quality.report import _check_machine, _table_machine

    assert _table_machine({"device": "CPU A (2 cores)"}, "CPU A (2 cores)") == "this machine"
    assert _table_machine({}, "CPU A (2 cores)") == "this machine"  # reports written before it was recorded
    assert _table_machine({"device": "CPU A (2 cores)"}, "CPU B (2 cores)") == \
        "CPU A (2 cores) (not this run's last machine)"
    assert _check_machine({"device": "CPU A (2 cores)"}, "CPU A (2 cores)") == ""
    assert _check_machine({"device": "CPU A (2 cores)"}, "CPU B (2 cores)") == " (timed on CPU A (2 cores))"
