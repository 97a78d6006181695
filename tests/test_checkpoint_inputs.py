"""Edited or foreign checkpoints given to ``hwnas extract`` / ``hwnas evaluate``: one ``error: ...`` line, exit 2.

Each case was an internal error (exit 1), a silently wrong result or a message pointing at ``weights_only=False``
before: config fields of the wrong type, a bad epoch, weights on the meta device or of another dtype kind, a pickle
that refers to code, a raw pickle (protocol warning on stderr), and duplicate rows from ``extract``.
"""
from __future__ import annotations

import copy
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hwnas
from hwnas import _weights
from hwnas.cli import main as hwnas_main
from hwnas.errors import CheckpointError
from hwnas.extract import find_images

SYN = ["--synthetic", "--synthetic-ids", "2", "--synthetic-images-per-id", "3"]
OPTIONS = {"width_mult": 0.25, "num_classes": 2}


@pytest.fixture(scope="module")
def good() -> dict:
    torch.manual_seed(0)
    model = hwnas.create_model("cdnet", **OPTIONS)
    return {"model": model.state_dict(), "model_name": "cdnet", "model_options": dict(OPTIONS), "epoch": 1,
            "config": {"height": 32, "width": 16}}


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("imgs")
    for i in range(2):
        Image.new("RGB", (16, 32), (40 * i, 90, 200)).save(root / f"{i}.jpg")
    return root


def _first(state: dict, floating: bool = True, dim: int | None = 4) -> str:
    return next(k for k, t in state.items() if t.is_floating_point() == floating and (dim is None or t.dim() == dim))


def _edit(good: dict, edit) -> dict:
    ckpt = copy.deepcopy(good)
    edit(ckpt)
    return ckpt


def _set_weight(fn, floating=True, dim=4):
    def edit(c):
        key = _first(c["model"], floating, dim)
        c["model"][key] = fn(c["model"][key])
    return edit


def _set_config(key, value):
    return lambda c: c["config"].__setitem__(key, value)


# (id, edit of the good checkpoint, texts of the error line); both extract and evaluate must refuse it
BAD = [
    ("config list", lambda c: c.__setitem__("config", [1, 2]), ["config is a list"]),
    ("config None", lambda c: c.__setitem__("config", None), ["config is a NoneType"]),
    ("height str", _set_config("height", "abc"), ["config height is 'abc'"]),
    ("height nan", _set_config("height", float("nan")), ["config height is nan"]),
    ("height negative", _set_config("height", -32), ["config height is -32"]),
    ("height zero", _set_config("height", 0), ["config height is 0"]),
    ("height float", _set_config("height", 47.9), ["config height is 47.9"]),
    ("height whole float", _set_config("height", 32.0), ["config height is 32.0"]),
    ("height bool", _set_config("height", True), ["config height is True"]),
    ("width huge", _set_config("width", 10**9), ["config width is 1000000000", "4096"]),
    ("meta weight", _set_weight(lambda t: torch.empty(t.shape, device="meta")), ["holds no values", "meta"]),
    ("complex weight", _set_weight(lambda t: torch.complex(t, t)), ["dtype complex64 (complex)", "float32"]),
    ("int64 weight", _set_weight(lambda t: (t * 0 + 7).long()), ["dtype int64 (integer)", "float32"]),
    ("bool weight", _set_weight(lambda t: t > 0), ["dtype bool (boolean)"]),
    ("float counter", _set_weight(lambda t: torch.tensor(1.5), floating=False, dim=None),
     ["num_batches_tracked has dtype float32 (floating-point)", "int64 (integer)"]),
    ("float64 beyond float32", _set_weight(lambda t: t.double() * 0 + 1e300), ["float64 values beyond the range"]),
    ("sparse weight", _set_weight(lambda t: t.to_sparse()), ["not a dense tensor"]),
]


def _run(argv, capsys) -> str:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rc = hwnas_main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "expected" in lines[0], err
    assert not caught, [str(w.message) for w in caught]  # no warning printed beside the error line
    return lines[0]


@pytest.mark.parametrize(("edit", "texts"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
@pytest.mark.parametrize("command", ["extract", "evaluate"])
def test_bad_checkpoint_is_one_error_line(command, edit, texts, good, images, tmp_path, capsys, monkeypatch,
                                          one_thread):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "last.pt"
    torch.save(_edit(good, edit), path)
    if command == "extract":
        argv = ["extract", "--checkpoint", str(path), "--images", str(images), "--output", "f.npz", "--no-progress"]
    else:
        argv = ["evaluate", "--checkpoint", str(path), *SYN, "--output", str(tmp_path / "ev")]
    line = _run(argv, capsys)
    for text in texts:
        assert text in line, line
    assert str(path) in line, line
    assert not (tmp_path / "f.npz").exists() and not (tmp_path / "ev" / "eval.json").exists()


@pytest.mark.parametrize("epoch", ["x", 2.7, 3.0, -1, True, None])
def test_evaluate_refuses_a_bad_epoch(epoch, good, tmp_path, capsys, one_thread):
    path = tmp_path / "last.pt"
    torch.save(_edit(good, lambda c: c.__setitem__("epoch", epoch)), path)
    line = _run(["evaluate", "--checkpoint", str(path), *SYN, "--output", str(tmp_path / "ev")], capsys)
    assert f"epoch is {epoch!r}, checkpoint '{path}', expected a whole number >= 0" in line, line


def test_checkpoint_with_code_is_refused_without_unsafe_advice(good, images, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "last.pt"
    torch.save({**good, "hook": os.system}, path)  # torch >= 2.5 words it "... whose module posix is blocked"
    for argv in (["extract", "--checkpoint", str(path), "--images", str(images), "--output", "f.npz"],
                 ["evaluate", "--checkpoint", str(path), *SYN]):
        line = _run(argv, capsys)
        assert "refers to Python code (" in line and "system" in line, line
        assert "weights_only" not in line and "Re-running" not in line, line


class _Code:
    def __reduce__(self):
        return (os.system, ("true",))


def test_raw_pickle_gives_one_line_and_no_warning(images, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "last.pt"
    path.write_bytes(pickle.dumps(_Code(), protocol=4))  # torch warns "Detected pickle protocol 4" on loading it
    line = _run(["extract", "--checkpoint", str(path), "--images", str(images), "--output", "f.npz"], capsys)
    assert "cannot be loaded" in line and "weights_only" not in line, line


ADVICE = ("Weights only load failed. In PyTorch 2.6, we changed the default value of the `weights_only` argument in "
          "`torch.load` from `False` to `True`. Re-running `torch.load` with `weights_only` set to `False` will likely "
          "succeed, but it can result in arbitrary code execution. Do it only if you got the file from a trusted "
          "source.")
DOCS = ("\n\nCheck the documentation of torch.load to learn more about types accepted by default with weights_only "
        "https://pytorch.org/docs/stable/generated/torch.load.html.")


@pytest.mark.parametrize(("text", "name"), ids=["blocked module", "not allowed", "older", "reduce"], argvalues=[
    (f"{ADVICE}\n\n\nTrying to load unsupported GLOBAL posix.system whose module posix is blocked.{DOCS}",
     "posix.system"),
    ("Weights only load failed. This file can still be loaded, to do so you have two options, do those steps only if "
     f"you trust the source of the checkpoint. \n\t(1) {ADVICE[26:]}\n\t(2) Alternatively, ...\n\tWeightsUnpickler "
     "error: Unsupported global: GLOBAL os.system was not an allowed global by default. Please use "
     "`torch.serialization.add_safe_globals([os.system])` or the ... context manager" + DOCS, "os.system"),
    (f"{ADVICE}\n\nUnsupported class subprocess.Popen", "subprocess.Popen"),
    (f"{ADVICE}\nPlease file an issue ...: WeightsUnpickler error: \n\nTrying to call reduce for unrecognized "
     "function <built-in function system> which belongs to <module 'posix'>" + DOCS, "<built-in function system>"),
])
def test_load_failure_names_code_in_every_wording(text, name):
    got = _weights.load_failure(RuntimeError(text))
    assert got.startswith(f"it refers to Python code ({name}), refused"), got
    assert "weights_only" not in got and "safe_globals" not in got


@pytest.mark.parametrize("text", ids=["advice", "new line", "docs", "operand"], argvalues=[
    ADVICE, f"{ADVICE}\nsomething new\n", f"{ADVICE}{DOCS}",
    f"{ADVICE}\nPlease file an issue: WeightsUnpickler error: \n\nUnsupported operand 149"])
def test_load_failure_never_repeats_the_unsafe_advice(text):
    got = _weights.load_failure(RuntimeError(text))
    assert "weights_only" not in got.lower() and "trusted" not in got and "False" not in got, got


def test_float64_weights_within_range_still_load(good):
    model = hwnas.create_model("cdnet", **OPTIONS)
    state = {k: (t.double() if t.is_floating_point() else t) for k, t in good["model"].items()}
    _weights.load_weights(model, state, "checkpoint 'x'")
    key = _first(good["model"])
    torch.testing.assert_close(model.state_dict()[key], good["model"][key])
    with pytest.raises(CheckpointError, match=r"weight .* has dtype complex64 \(complex\) in the checkpoint but "
                       r"float32 \(floating-point\) in the model, checkpoint 'x', expected floating-point values"):
        _weights.load_weights(model, {**state, key: torch.complex(state[key].float(), state[key].float())},
                              "checkpoint 'x'")


def test_find_images_lists_each_file_once(images, tmp_path, monkeypatch):
    monkeypatch.chdir(images.parent)
    rel = images.name
    (tmp_path / "link.jpg").symlink_to(images / "0.jpg")
    got = find_images([rel, f"./{rel}/*.jpg", f"{rel}//*.jpg", f"{rel}/../{rel}/1.jpg", str(images / "0.jpg"),
                       str(tmp_path / "link.jpg")])
    assert got == [f"{rel}/0.jpg", f"{rel}/1.jpg"]


def test_extract_writes_one_row_per_file(good, images, tmp_path, capsys, monkeypatch, one_thread):
    monkeypatch.chdir(images.parent)
    path = tmp_path / "last.pt"
    torch.save(good, path)
    out = tmp_path / "f.npz"
    rel = images.name
    assert hwnas_main(["extract", "--checkpoint", str(path), "--images", rel, "--images", f"./{rel}/*.jpg",
                       "--images", f"{rel}//*.jpg", "--output", str(out), "--no-progress"]) == 0
    f = np.load(out)
    assert f["files"].tolist() == [f"{rel}/0.jpg", f"{rel}/1.jpg"] and f["features"].shape[0] == 2
    assert f["input_size"].tolist() == [32, 16]
