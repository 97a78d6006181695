"""Kinds of bad input found by an attack on the search-quality --status and search --resume (2026-12-02), checked
at the shared readers so that every command that uses them refuses them with one error: a JSON integer of more
digits than Python converts, a FIFO where a file is read, a number beyond float's range, non-finite weights,
optimizer buffers without values, negative statistics that become NaN (BN variance, Adam's step and second moment),
text a strict stdout cannot encode."""
from __future__ import annotations

import os

import pytest
import torch

from hwnas._io import finite_number, read_regular
from hwnas._weights import check_tensor, load_optimizer
from hwnas.errors import CheckpointError, HwnasError

HUGE_INT = "9" * 5000  # json.loads raises ValueError (not JSONDecodeError) beyond 4300 digits


def test_finite_number_takes_json_numbers_only():
    assert finite_number(1) and finite_number(-2.5) and finite_number(10 ** 300)
    for bad in (True, "1", None, float("nan"), float("inf"), 10 ** 400, -(10 ** 400), [1]):
        assert not finite_number(bad), bad


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_a_fifo_is_refused_not_read(tmp_path):
    from hwnas.latency.io import read_table
    from hwnas.space.genotype import load_genotype

    fifo = tmp_path / "genotype.json"
    os.mkfifo(fifo)  # nothing ever writes it: reading would block forever
    with pytest.raises(OSError, match="not a regular file"):
        read_regular(fifo)
    with pytest.raises(HwnasError, match=r"cannot be read \(not a regular file\), genotype file"):
        load_genotype(fifo)
    with pytest.raises(HwnasError, match="no latency table"):  # resolved as a table file only if it is a file
        read_table(fifo)
    (tmp_path / "ok.json").write_text("{}")
    assert read_regular(tmp_path / "ok.json") == b"{}"


def test_json_integers_beyond_pythons_limit_are_refused_as_bad_json(tmp_path):
    from hwnas.latency.io import read_table
    from hwnas.space.genotype import load_genotype
    from hwnas.viz.training import read_metrics

    path = tmp_path / "x.json"
    path.write_text('{"layers": [[' + HUGE_INT + ', 5, 1]]}')
    with pytest.raises(HwnasError, match=r"not valid JSON \(Exceeds the limit"):
        load_genotype(path)
    with pytest.raises(HwnasError, match="Exceeds the limit"):
        read_table(path)
    path.write_text('{"epoch": ' + HUGE_INT + "}\n")
    with pytest.raises(HwnasError, match=r"not valid JSON \(Exceeds the limit.*line 1"):
        read_metrics(path)


def test_cached_benchmark_numbers_beyond_float_are_not_used():
    from benchmarks._quality.plan import check_search_reuse
    from benchmarks._quality.standalone import Recipe, result_problem
    from hwnas.space.genotype import Genotype

    g, recipe = Genotype.fromstr("cdnet:3-5-1,3-5-1,3-5-1,3-5-1,3-5-1,3-5-1"), Recipe(epochs=1)
    ok = {"genotype": g.tostr(), "seed": 0, "recipe": recipe.to_dict(), "rank1": 0.5, "mAP": 0.25, "mINP": 0.1,
          "train_acc": None, "train_s": 3.0}
    assert result_problem(ok, g, 0, recipe) is None
    assert "train_s" in result_problem({**ok, "train_s": 10 ** 400}, g, 0, recipe)  # was OverflowError in the log line
    with pytest.raises(HwnasError, match="at weight 1000"):  # was OverflowError in math.isclose
        check_search_reuse({"latency_table": {"name": "t"}, "config": {"latency_weight": 10 ** 400}}, "dir", 0.5,
                           {"name": "t"})


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_at_load(bad):
    target = torch.zeros(2, 3)
    tensor = torch.ones(2, 3)
    tensor[1, 2] = bad
    with pytest.raises(CheckpointError, match=r"weight w holds NaN or infinite values, checkpoint 'c.pt'"):
        check_tensor("w", tensor, target, "checkpoint 'c.pt'")
    check_tensor("n", torch.tensor(7), torch.tensor(0), "checkpoint 'c.pt'")  # integers (a BN counter) are fine


@pytest.mark.parametrize("make", [lambda t: t.to("meta"), lambda t: t.to_sparse()], ids=["meta", "sparse"])
def test_optimizer_buffers_without_values_are_refused(make):
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    state = opt.state_dict()
    entry = state["state"][0]
    edited = {**state, "state": {0: {**entry, "exp_avg": make(entry["exp_avg"])}}}
    fresh = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))], lr=0.1)
    with pytest.raises(CheckpointError, match=r"exp_avg of parameter 0 is not a dense tensor with values"):
        load_optimizer(fresh, edited, "checkpoint 'c.pt'")  # was an internal error (NotImplementedError, .item())
    load_optimizer(fresh, state, "checkpoint 'c.pt'")


@pytest.mark.parametrize("name", ["bn.running_var", "bn.num_batches_tracked"])
def test_negative_batch_norm_statistics_are_refused_at_load(name):
    """Found by an attack: a negative running variance loaded, and evaluation then gave NaN features."""
    target = torch.zeros(3, dtype=torch.long) if name.endswith("tracked") else torch.ones(3)
    bad = target.clone()
    bad[1] = -1
    with pytest.raises(CheckpointError, match=rf"weight {name} holds negative values .*, expected a .* >= 0"):
        check_tensor(name, bad, target, "checkpoint 'c.pt'")
    check_tensor(name, target, target, "checkpoint 'c.pt'")
    check_tensor("conv.weight", -torch.ones(3), torch.ones(3), "checkpoint 'c.pt'")  # weights may be negative


def _drop(entry, key):
    return {k: v for k, v in entry.items() if k != key}


ADAM_EDITS = [  # each failed at the first step (internal error) or gave NaN / frozen updates (a silent wrong result)
    (lambda e: {**e, "step": -e["step"]}, r"step of parameter 0 is -1.0, expected a step count \(a whole number"),
    (lambda e: {**e, "step": -3.0}, r"step of parameter 0 is -3.0, expected a step count"),
    (lambda e: {**e, "step": float("nan")}, r"step of parameter 0 is nan, expected a step count"),
    (lambda e: {**e, "step": 1e38}, r"step of parameter 0 is 1e\+38, expected a step count"),
    (lambda e: {**e, "step": 2.5}, r"step of parameter 0 is 2.5, expected a step count"),
    (lambda e: {**e, "step": "five"}, r"step of parameter 0 is five, expected a step count"),
    (lambda e: {**e, "step": torch.full((3,), 5.0)}, r"step of parameter 0 is a float32 tensor of shape \(3,\)"),
    (lambda e: {**e, "exp_avg_sq": -e["exp_avg_sq"]}, r"exp_avg_sq of parameter 0 holds negative values"),
    (lambda e: {**e, "exp_avg": torch.tensor(0.1)}, r"exp_avg of parameter 0 has shape \(\), the parameter \(3,\)"),
    (lambda e: {**e, "exp_avg": torch.full((3,), complex(float("nan"), 0))}, r"exp_avg of parameter 0 has dtype "
                                                                            r"complex64, expected floating-point"),
    (lambda e: {**e, "exp_avg_sq": torch.full((3,), 1e300, dtype=torch.float64)},
     r"exp_avg_sq of parameter 0 holds values beyond the range of the parameter's float32"),
    (lambda e: {**e, "exp_avg": "x"}, r"exp_avg of parameter 0 is a str, expected a tensor"),
    (lambda e: _drop(e, "exp_avg_sq"), r"parameter 0 lacks exp_avg_sq"),
]


@pytest.mark.parametrize("edit,message", ADAM_EDITS, ids=[m[:28] for _, m in ADAM_EDITS])
def test_adam_states_that_would_fail_or_give_nan_are_refused(edit, message):
    """Found by attacks: Adam's bias correction (1 - beta**step), sqrt(exp_avg_sq) and the first step's arithmetic
    turned these into NaN or frozen updates, or internal errors after the run had started."""
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.Adam([p], lr=0.1)
    p.grad = torch.ones(3)
    opt.step()
    state = opt.state_dict()
    edited = {**state, "state": {0: edit(state["state"][0])}}
    fresh = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))], lr=0.1)
    with pytest.raises(CheckpointError, match=message):
        load_optimizer(fresh, edited, "checkpoint 'c.pt'")
    load_optimizer(fresh, state, "checkpoint 'c.pt'")


@pytest.mark.parametrize("buffer,message", [
    (torch.tensor(0.1), r"momentum_buffer of parameter 0 has shape \(\)"),
    ("x", r"momentum_buffer of parameter 0 is a str"),
    (float("nan"), r"momentum_buffer of parameter 0 is a float"),
    (torch.full((3,), 1e300, dtype=torch.float64), r"beyond the range of the parameter's float32"),
], ids=["0-dim", "str", "nan", "float64 overflow"])
def test_sgd_momentum_buffers_that_would_fail_are_refused(buffer, message):
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = torch.ones(3)
    opt.step()
    state = opt.state_dict()
    fresh = torch.optim.SGD([torch.nn.Parameter(torch.ones(3))], lr=0.1, momentum=0.9)
    with pytest.raises(CheckpointError, match=message):
        load_optimizer(fresh, {**state, "state": {0: {"momentum_buffer": buffer}}}, "checkpoint 'c.pt'")
    load_optimizer(fresh, {**state, "state": {0: {"momentum_buffer": None}}}, "checkpoint 'c.pt'")  # torch's own
    with pytest.raises(CheckpointError, match=r"parameter 0 lacks momentum_buffer"):
        load_optimizer(fresh, {**state, "state": {0: {}}} | {"state": {0: {"other": None}}}, "checkpoint 'c.pt'")


def test_negative_momentum_buffers_load():
    p = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = -torch.ones(3)
    opt.step()
    assert bool((opt.state_dict()["state"][0]["momentum_buffer"] < 0).all())
    fresh = torch.optim.SGD([torch.nn.Parameter(torch.ones(3))], lr=0.1, momentum=0.9)
    load_optimizer(fresh, opt.state_dict(), "checkpoint 'c.pt'")


def test_text_a_stream_cannot_encode_is_escaped_not_an_internal_error(monkeypatch):
    """Found by an attack: a path with bytes undecodable in the file-system encoding (Python's surrogateescape
    gives '\\udcff'), printed under a strict UTF-8 or ASCII stdout, failed with UnicodeEncodeError after the work
    was done (exit 1); every command now escapes what its streams cannot encode."""
    import io
    import sys

    from hwnas import _cli

    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="ascii", errors="strict")
    monkeypatch.setattr(sys, "stdout", out)

    @_cli.command
    def main(argv=None):
        print("wrote /tmp/r\udcff\u00e9/genotype.json")
        return 0

    assert main([]) == 0
    out.flush()
    assert raw.getvalue() == b"wrote /tmp/r\\udcff\\xe9/genotype.json\n"


def test_error_lines_stay_one_printable_line(capsys):
    """Found by an attack: a path holding a newline or an escape sequence split the error line or coloured the
    terminal (``--output $'x\\nerror: fake\\x1b[31m'``); every message goes through one printable line."""
    from hwnas import _cli
    from hwnas.errors import UsageError

    @_cli.command
    def main(argv=None):
        raise UsageError("no such folder, --output /tmp/x\nerror: fake\x1b[31m, expected a folder")

    assert main([]) == 2
    err = capsys.readouterr().err
    assert err == "error: no such folder, --output /tmp/x\\nerror: fake\\x1b[31m, expected a folder\n"


def test_a_closed_stdout_pipe_ends_quietly(capsys):
    """Found by an attack: ``hwnas report flops --table 3 | head -c 1`` printed 'error: broken pipe, a file,
    expected a readable (input) or writable (output) path'; it now stops as Unix tools do (status 141, silent)."""
    from hwnas import _cli

    @_cli.command
    def main(argv=None):
        raise BrokenPipeError(32, "Broken pipe")

    assert main([]) == _cli.BROKEN_PIPE_EXIT == 141
    assert capsys.readouterr().err == ""
