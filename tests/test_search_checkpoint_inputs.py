"""An edited or damaged search checkpoint is refused (CheckpointError naming the field) before the search runs or
writes anything; the progress counters, sums, history and random-number state are checked, not trusted."""
from __future__ import annotations

import math
import re

import pytest
import torch

from hwnas.errors import CheckpointError
from tests.test_outputs import _search_parts


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A search stopped after one step (mid-epoch) and its checkpoint."""
    from hwnas.search import Searcher

    data, config = _search_parts()
    out = tmp_path_factory.mktemp("search")
    config = config.replace(epochs=2, checkpoint_every=1)
    assert Searcher(config, data, out, progress=False).run(stop_after_steps=2) is None
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    return data, config, ckpt


def _state(ckpt, **changes):
    return {**ckpt, "state": {**ckpt["state"], **changes}}


def _config_without(ckpt, key):
    """A checkpoint whose config lacks ``key``: only fields added later read as the behaviour before them."""
    return {**ckpt, "config": {k: v for k, v in ckpt["config"].items() if k != key}}


def _sums(ckpt, **changes):
    return _state(ckpt, sums={**ckpt["state"]["sums"], **changes})


CASES = [
    (lambda c: _state(c, epoch=-3), r"state.epoch, expected a whole number >= 0"),
    (lambda c: _state(c, epoch=7), r"state.epoch, expected at most the search's 2 epochs"),
    (lambda c: _state(c, epoch=1.0), r"state.epoch, expected a whole number"),
    (lambda c: _state(c, epoch="1"), r"bad value '1', .*state.epoch, expected a whole number"),  # quoted: not 1
    (lambda c: _state(c, step=True), r"state.step, expected a whole number"),
    (lambda c: _state(c, count=-1), r"state.count, expected a whole number >= 0"),
    (lambda c: _state(c, step=10 ** 9, count=10 ** 9, global_step=10 ** 9), r"bad progress .*state, expected step <="),
    (lambda c: _state(c, global_step=50), r"bad progress .*global step = 0 \+ step"),
    (lambda c: _state(c, val_cycle=10 ** 30), r"state.val_cycle, expected at most the steps taken"),
    (lambda c: _state(c, val_pos=10 ** 9), r"state.val_pos, expected at most the steps taken"),
    (lambda c: _sums(c, train_loss=math.nan), r"state.sums.train_loss, expected a finite number"),
    (lambda c: _sums(c, latency_ms="1"), r"state.sums.latency_ms, expected a finite number"),
    (lambda c: _sums(c, time_s=math.inf), r"state.sums.time_s, expected a finite number"),
    (lambda c: _state(c, bogus=1), r"state, expected the fields epoch, step"),
    (lambda c: {**c, "state": [1, 2]}, r"state is a list, .*expected the mapping"),
    (lambda c: _state(c, history=[{"epoch": 1}]), r"state.history, expected one record per finished epoch \(0\)"),
    (lambda c: {**c, "rng": [torch.zeros(3, dtype=torch.float32)]}, r"rng, expected one torch.ByteTensor"),
    (lambda c: {**c, "rng": []}, r"rng, expected one torch.ByteTensor"),
    (lambda c: {**c, "rng": [torch.zeros(5, dtype=torch.uint8)]}, r"bad random-number state"),
    (lambda c: {**c, "rng": c["rng"] * 2}, r"2 random-number states for 1 process\(es\), .*rng, expected one per"),
    (lambda c: {**c, "world_size": 0}, r"bad value 0, .*world_size, expected the number of processes"),
    (lambda c: {**c, "world_size": True}, r"bad value True, .*world_size, expected the number of processes"),
    (lambda c: _config_without(c, "seed"), r"settings differ .*\(seed \(absent\) -> 0\)"),
    (lambda c: _config_without(c, "lr"), r"settings differ .*\(lr \(absent\) -> "),
    (lambda c: _config_without(c, "val_split"), r"settings differ .*val_split 'disjoint' -> 'official'"),
    (lambda c: {**c, "config": "lr: 1"}, r"config is a str, .*expected the mapping"),
    (lambda c: {**c, "grads_kept": "all"}, r"grads_kept, expected a list of parameter names"),
    (lambda c: _sums(c, train_acc=1e6), r"state.sums.train_acc, expected the sum over the epoch's"),
    (lambda c: _sums(c, time_s=-5.0), r"state.sums.time_s, expected the sum"),
    (lambda c: _sums(c, train_loss=-1e6), r"state.sums.train_loss, expected the sum .*every metric >= 0"),
    (lambda c: _sums(c, latency_penalty=-1e30), r"state.sums.latency_penalty, expected the sum"),
    (lambda c: {**c, "latency_table": "rtx2080"}, r"latency_table, expected null or the name and hash"),
    (lambda c: _group(c, "weight_opt", nesterov=True), r"param_groups\[0\].nesterov is True, the run's is False"),
    (lambda c: _group(c, "weight_opt", weight_decay=5.0), r"param_groups\[0\].weight_decay is 5.0"),
    (lambda c: _group(c, "alpha_opt", betas=(0.0, 5.0)), r"param_groups\[0\].betas is \(0.0, 5.0\)"),
    (lambda c: _buffer(c, lambda t: torch.zeros(3)), r"momentum_buffer of parameter .* has shape \(3,\)"),
    # found by an attack: a key that is not a name, a tensor setting, an int beyond float, data of another type
    (lambda c: {**c, "config": {**c["config"], 1: 2}}, r"bad value 2, .*config.1, expected the settings"),
    (lambda c: {**c, "config": {**c["config"], "seed": torch.zeros(2)}}, r"config.seed, expected the settings"),
    (lambda c: _sums(c, train_loss=10 ** 400), r"state.sums.train_loss, expected a finite number"),
    (lambda c: {**c, "data": [1, 2]}, r"bad value \[1, 2\], .* data, expected null or the identity"),
    (lambda c: _buffer(c, lambda t: torch.full_like(t, math.nan)), r"momentum_buffer of parameter .* NaN or infinite"),
]


def _group(ckpt, which, **changes):
    opt = ckpt[which]
    return {**ckpt, which: {**opt, "param_groups": [{**opt["param_groups"][0], **changes}, *opt["param_groups"][1:]]}}


def _buffer(ckpt, make):
    opt = ckpt["weight_opt"]
    key = next(k for k, v in opt["state"].items() if "momentum_buffer" in v)
    entry = opt["state"][key]
    return {**ckpt, "weight_opt": {**opt, "state": {**opt["state"], key: {**entry, "momentum_buffer": make(
        entry["momentum_buffer"])}}}}


def test_an_edited_history_record_is_refused(saved, tmp_path):
    from hwnas.search import Searcher
    from hwnas.search._checkpoint import check_resumable

    data, config, ckpt = saved
    path = tmp_path / "checkpoints" / "last.pt"
    path.parent.mkdir()
    torch.save(ckpt, path)
    finished = Searcher(config, data, tmp_path, progress=False).run(resume=True)  # two history records now
    assert finished is not None
    full = torch.load(path, weights_only=True)
    record = full["state"]["history"][0]
    cut = {**full, "state": {**full["state"], "epoch": 1, "step": 0, "count": 0,
                             "global_step": full["state"]["history"][0]["steps"],
                             "sums": dict.fromkeys(full["state"]["sums"], 0.0)}}
    for edited, message in (({**record, "train_loss": "x"}, r"history\[0\].train_loss, expected the finite number"),
                            ({**record, "train_loss": [1.0]}, r"history\[0\].train_loss"),
                            ({k: v for k, v in record.items() if k != "lr"}, r"a record without lr"),
                            ({**record, "steps": -3}, r"history\[0\].steps"),
                            ({**record, "genotype": 5}, r"history\[0\].genotype")):
        torch.save({**cut, "state": {**cut["state"], "history": [edited]}}, path)
        with pytest.raises(CheckpointError, match=message):
            check_resumable(path, config, None, data.identity)  # the command line's check, before any write
            Searcher(config, data, tmp_path, progress=False).run(resume=True)  # what it leaves to load()


@pytest.mark.parametrize("edit,message", CASES, ids=[m[:40] for _, m in CASES])
def test_an_edited_checkpoint_is_refused_before_anything_runs(saved, tmp_path, edit, message):
    """Each edit is refused by the command line's check of the loaded checkpoint (in memory here: loading the file
    takes seconds, and the tests below check the file's way once) or, for what only the optimizers' loading
    checks, by the search itself, before it writes anything."""
    from hwnas.search import Searcher
    from hwnas.search._checkpoint import check_checkpoint

    data, config, ckpt = saved
    edited = edit(ckpt)
    try:
        check_checkpoint(edited, "checkpoint 'last.pt'", config, None, data.identity)
    except CheckpointError as e:
        assert re.search(message, str(e)), str(e)
        return
    path = tmp_path / "checkpoints" / "last.pt"
    path.parent.mkdir()
    torch.save(edited, path)
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match=message):
        Searcher(config, data, tmp_path, progress=False).run(resume=True)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.rglob("*")) == ["checkpoints", "last.pt"]


JUNK_STATES = [
    (lambda c: {**c, "model": {**c["model"], "stem.weight": [1.0]}}, r"weight stem.weight is a list, .* model, "
                                                                      r"expected the supernet's state dict"),
    (lambda c: {**c, "model": {**c["model"], 3: torch.zeros(1)}}, r"weight 3 is a Tensor, .* model"),
    (lambda c: {**c, "model": {}}, r"no weights, .* model"),
    (lambda c: {**c, "weight_opt": {"state": {}, "param_groups": "all"}}, r"not an optimizer state, .* weight_opt"),
    (lambda c: {**c, "alpha_opt": {"state": [], "param_groups": c["alpha_opt"]["param_groups"]}},
     r"not an optimizer state, .* alpha_opt"),
    (lambda c: {**c, "alpha_opt": {**c["alpha_opt"], "param_groups": [{"lr": 1}]}}, r"not an optimizer state"),
]


@pytest.mark.parametrize("edit,message", JUNK_STATES, ids=[m[:30] for _, m in JUNK_STATES])
def test_junk_weights_and_optimizer_states_are_refused_with_the_other_checks(saved, edit, message):
    """Found by an attack: these were refused only when the search loaded them, after the command line had
    printed its data line; the check before anything is printed or written refuses them now."""
    from hwnas.search._checkpoint import check_checkpoint

    data, config, ckpt = saved
    with pytest.raises(CheckpointError, match=message):
        check_checkpoint(edit(ckpt), "checkpoint 'last.pt'", config, None, data.identity)


def _first_weight(ckpt, change):
    name = next(k for k, v in ckpt["model"].items() if v.dim() == 4)
    return {**ckpt, "model": {**ckpt["model"], name: change(ckpt["model"][name])}}


NEEDS_THE_SUPERNET = [  # refused only inside Searcher.load once, after the command line printed its data line
    (lambda c: _first_weight(c, lambda t: t[:1]), r"has shape \(1, .*expected the supernet of the same search"),
    (lambda c: _first_weight(c, lambda t: t.long()), r"has dtype int64 \(integer\) in the checkpoint"),
    (lambda c: {**c, "model": {**c["model"], "bogus.weight": torch.zeros(1)}}, r"bogus.weight"),
    (lambda c: {**c, "grads_kept": ["no.such.param"]}, r"unknown parameter\(s\) no.such.param, .*grads_kept"),
    (lambda c: _state(c, step=3, global_step=3), r"bad progress .*global step = 0 \+ step|step <="),
    (lambda c: {**c, "world_size": 2, "rng": c["rng"] * 2}, r"written by 2 process\(es\) but resumed by 1"),
]


@pytest.mark.parametrize("edit,message", NEEDS_THE_SUPERNET, ids=[m[:24] for _, m in NEEDS_THE_SUPERNET])
def test_checks_that_need_the_supernet_run_before_the_resume(saved, tmp_path, edit, message):
    """Found by an attack: a checkpoint whose weights, progress or processes do not fit the supernet was refused
    only by the search itself, after the command line had printed its data line; ``check_resume`` (the command
    line's check) loads it into a CPU copy first, writes nothing and keeps the global random state."""
    from hwnas.search.loop import check_resume

    data, config, ckpt = saved
    path = tmp_path / "checkpoints" / "last.pt"
    path.parent.mkdir()
    torch.save(edit(ckpt), path)
    before, rng = path.read_bytes(), torch.get_rng_state()
    with pytest.raises(CheckpointError, match=message):
        check_resume(config, data, tmp_path, None)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.rglob("*")) == ["checkpoints", "last.pt"]
    assert torch.equal(torch.get_rng_state(), rng)
    torch.save(ckpt, path)
    check_resume(config, data, tmp_path, None)  # the unedited one passes, and leaves the random state alone
    assert torch.equal(torch.get_rng_state(), rng)


def test_an_edited_checkpoint_file_is_refused_by_the_command_lines_check(saved, tmp_path):
    from hwnas.search._checkpoint import check_resumable

    data, config, ckpt = saved
    path = tmp_path / "last.pt"
    for edit, message in CASES[:1] + [(lambda c: {**c, "state": [1, 2]}, r"state is a list, .*expected the mapping")]:
        torch.save(edit(ckpt), path)
        with pytest.raises(CheckpointError, match=message):
            check_resumable(path, config, None, data.identity)


def test_the_unedited_checkpoint_resumes(saved, tmp_path):
    from hwnas.search import Searcher

    data, config, ckpt = saved
    (tmp_path / "checkpoints").mkdir()
    torch.save(ckpt, tmp_path / "checkpoints" / "last.pt")
    result = Searcher(config, data, tmp_path, progress=False).run(resume=True)
    assert result is not None and len(result.history) == 2


@pytest.mark.parametrize("make", ["folder", "fifo", "dangling link", "looping link", "file for the folder"])
def test_something_else_at_the_checkpoint_path_is_refused_not_taken_for_none(tmp_path, make):
    """Found by an attack: a folder, FIFO or broken link at checkpoints/last.pt counted as "no checkpoint yet", so
    --resume started the search again from epoch 1 and replaced it (a link to an unmounted disk lost the run)."""
    import os

    from hwnas.search._checkpoint import has_checkpoint

    path = tmp_path / "checkpoints" / "last.pt"
    assert not has_checkpoint(path)  # nothing there: a search stopped before its first checkpoint
    if make == "file for the folder":
        (tmp_path / "checkpoints").write_text("x")
        message = r"not a folder, .*checkpoints, expected the search's checkpoints folder"
    else:
        path.parent.mkdir()
        message = r"not a regular file, checkpoint .*last.pt, expected the checkpoint hwnas search writes"
        if make == "folder":
            path.mkdir()
        elif make == "fifo":
            os.mkfifo(path)
        elif make == "dangling link":
            path.symlink_to(tmp_path / "unmounted" / "last.pt")
        else:
            path.symlink_to(path)
    with pytest.raises(CheckpointError, match=message):
        has_checkpoint(path)
