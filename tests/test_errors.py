"""Library errors stay library errors: every expected failure raises an HwnasError subclass worded
``<what>, <where>, expected <what>`` and naming the file (issue 12, item 2), never a raw PIL/json/torch error.

One row per kind of bad input; the AST check at the end keeps every future ``raise`` in hwnas/ and kernels/ to the
same rule.
"""
from __future__ import annotations

import ast
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hwnas
from hwnas._io import write_json_atomic, write_text_atomic
from hwnas._weights import load_weights
from hwnas.data.datasets import Market1501
from hwnas.data.loaders import read_image
from hwnas.data.synthetic import generate_synthetic_market
from hwnas.errors import (
    CheckpointError,
    DatasetError,
    GenotypeError,
    HwnasError,
    ImageReadError,
    LatencyTableError,
    OutputError,
)
from hwnas.latency import read_table
from hwnas.space import PRESETS, Genotype, load_genotype

REPO = Path(__file__).resolve().parents[1]
LAYERS = [[3, 5, 1], [3, 7, 2], [5, 7, 2], [5, 9, 1], [5, 7, 2], [5, 7, 1]]


# ------------------------------------------------------------------------------------------ bad files, by kind
def _not_utf8(p: Path) -> Path:
    p.write_bytes(b'{"layers": [[3, 5, 1]], "note": "caf\xe9"}')
    return p


def _deeply_nested(p: Path) -> Path:
    p.write_text("[" * 100_000 + "]" * 100_000)
    return p


def _alpha_text(token: str):
    def make(p: Path) -> Path:
        rows = ",".join("[" + ",".join(["0.1"] * 12) + "]" for _ in range(5))
        p.write_text(f'{{"layers": {json.dumps(LAYERS)}, "alphas": [[{token}, 0.1], {rows}]}}')
        return p
    return make


BAD_GENOTYPE_FILES = [
    ("not UTF-8", _not_utf8, "not UTF-8 text (byte 36: b'\\xe9')"),
    ("deeply nested JSON", _deeply_nested, "JSON nested too deeply"),
    ("NaN alpha", _alpha_text("NaN"), "alpha is nan"),
    ("Infinity alpha", _alpha_text("Infinity"), "alpha is inf"),
    ("overflowing alpha", _alpha_text("1e999"), "alpha is inf"),
    ("-Infinity alpha", _alpha_text("-Infinity"), "alpha is -inf"),
    ("alphas not numbers", lambda p: (p.write_text(json.dumps({"layers": LAYERS, "alphas": [["a"]]})), p)[1],
     "'alphas' is [['a']]"),
]


@pytest.mark.parametrize(("make", "message"), [r[1:] for r in BAD_GENOTYPE_FILES],
                         ids=[r[0] for r in BAD_GENOTYPE_FILES])
def test_bad_genotype_file_is_a_genotype_error_naming_the_file(make, message, tmp_path):
    path = make(tmp_path / "g.json")
    with pytest.raises(GenotypeError) as err:
        load_genotype(path)
    text = str(err.value)
    assert message in text and str(path) in text and ", expected " in text, text


def test_non_finite_alphas_are_refused_in_a_genotype_object():
    with pytest.raises(GenotypeError, match=r"alpha is nan, genotype alphas \[0\]\[1\], expected finite"):
        Genotype("cdnet", PRESETS["cdnet-top2"].layers, ((0.0, float("nan")),))


# ------------------------------------------------------------------------------------------------------- images
def test_16_bit_grayscale_png_keeps_its_values(tmp_path):
    """PIL's plain convert('RGB') clips 16-bit values at 255 (a 254.5 mean); the reader scales them."""
    values = (np.linspace(0, 1, 64 * 32).reshape(64, 32) * 65535 * 0.95).astype(np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode.startswith("I;16")
    got = np.asarray(read_image(str(path)), dtype=np.float64)
    assert got.shape == (64, 32, 3)
    assert got.mean() == pytest.approx(np.round(values / 257).mean(), abs=1e-9)
    assert got.mean() == pytest.approx(121.12, abs=0.01)  # not 254.4 (saturated)


def test_decompression_bomb_is_an_image_read_error(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("L", (40, 40)).save(path)  # 1600 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # between the limit and twice it: PIL only warns
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(ImageReadError) as err:
        read_image(str(path))
    assert "40x40 pixels (a decompression bomb?)" in str(err.value) and str(path) in str(err.value)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # above twice the limit: PIL raises its own error
    with pytest.raises(ImageReadError, match=r"decompression bomb .*bomb\.png', expected at most 500 pixels"):
        read_image(str(path))


@pytest.mark.parametrize(("content", "message"), [(b"", "corrupt, truncated or not an image"),
                                                   (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "corrupt, truncated"),
                                                   (b"not an image at all", "not an image")])
def test_damaged_image_is_an_image_read_error(content, message, tmp_path):
    path = tmp_path / "x.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=message) as err:
        read_image(str(path))
    assert str(path) in str(err.value) and "expected" in str(err.value)


@pytest.fixture(scope="module")
def market(tmp_path_factory) -> Path:
    return generate_synthetic_market(tmp_path_factory.mktemp("m") / "Market", num_ids=3, images_per_id=4,
                                     num_cameras=2, image_size=(32, 16), seed=3)


def test_hidden_files_in_dataset_folders_are_skipped_and_counted(market, tmp_path, caplog):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(market, root)
    want = Market1501(root).counts()
    for split in ("bounding_box_train", "query", "bounding_box_test"):
        first = min((root / split).glob("*.jpg"))
        (root / split / f"._{first.name}").write_bytes(b"\x00\x05\x16\x07AppleDouble")  # macOS resource fork
        (root / split / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
        (root / split / "notes.txt").write_text("x")
    with caplog.at_level(logging.INFO, logger="hwnas.data.datasets"):
        ds = Market1501(root)
    assert ds.counts() == want
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 3 and all("skipped 2 hidden file(s)" in m and "1 non-image" in m for m in skipped)


def test_non_utf8_dataset_path_is_a_dataset_error(tmp_path):
    raw = os.fsencode(tmp_path) + b"/data-\xff"
    os.mkdir(raw)
    with pytest.raises(DatasetError) as err:
        Market1501(os.fsdecode(raw))
    assert "dataset path is not valid UTF-8" in str(err.value) and "data-\\xff" in str(err.value)


def test_text_that_is_not_utf8_is_an_output_error(tmp_path):
    name = os.fsdecode(b"data-\xff")  # a file name read back with surrogate escapes
    with pytest.raises(OutputError) as err:
        write_text_atomic(tmp_path / "report.md", f"data: {name}\n")
    assert "report.md" in str(err.value) and "b'\\xff'" in str(err.value) and "expected UTF-8 text" in str(err.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_json_writer_refuses_non_finite_numbers(bad, tmp_path):
    with pytest.raises(OutputError) as err:
        write_json_atomic(tmp_path / "eval.json", {"final": {"val_acc": 0.5, "cmc": [1.0, bad]}})
    assert "final.cmc[1]" in str(err.value) and "eval.json" in str(err.value) and "null" in str(err.value)
    assert list(tmp_path.iterdir()) == []  # no file, no temp file


# ------------------------------------------------------------------------------------------ latency tables
@pytest.mark.parametrize("token", ["Infinity", "-Infinity", "NaN", "1e999", "-2.5"])
def test_latency_entry_that_is_not_a_finite_number_is_refused_at_load(token, tmp_path):
    table = json.loads((REPO / "hwnas/latency/tables/rtx2080.json").read_text())
    text = json.dumps(table).replace(json.dumps(table["layers"][2]["latency_ms"]), "__X__", 1)
    path = tmp_path / "t.json"
    path.write_text(text.replace("__X__", token))
    with pytest.raises(LatencyTableError) as err:
        read_table(path)
    text = str(err.value)
    assert str(path) in text and ("expected finite numbers" in text or "expected a finite number" in text), text
    if token in ("1e999", "-2.5"):  # parsed as numbers: the entry check names the field
        assert "layers[2].latency_ms" in text and "latency entry is " in text


# ------------------------------------------------------------------------------------------------ weights
def _small(genotype: str = "cdnet-top2") -> torch.nn.Module:
    return hwnas.create_model("cdnet", genotype=genotype, width_mult=0.25, num_classes=5)


def test_dataparallel_prefix_loads_with_a_note(caplog):
    src, dst = _small(), _small()
    wrapped = {f"module.{k}": v for k, v in src.state_dict().items()}
    with caplog.at_level(logging.INFO, logger="hwnas._weights"):
        load_weights(dst, wrapped, "checkpoint 'x.pt'")
    assert any("'module.'" in r.getMessage() and "DataParallel" in r.getMessage() for r in caplog.records)
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))


def test_mismatched_weights_give_a_short_error_naming_the_cause():
    other = _small("cdnet-top1").state_dict()  # other depths: keys missing and unexpected
    with pytest.raises(CheckpointError) as err:
        load_weights(_small(), other, "checkpoint 'x.pt'")
    text = str(err.value)
    assert len(text) < 700 and "missing (" in text and "unexpected (" in text and "more)" in text
    assert text.startswith("weights do not fit ReIDModel: ") and "checkpoint 'x.pt', expected" in text
    wide = hwnas.create_model("cdnet", width_mult=0.5, num_classes=5).state_dict()
    with pytest.raises(CheckpointError, match=r"weight backbone.stem.\S+ has shape \(32, 3, 7, 7\) in the checkpoint "
                                              r"but \(16, 3, 7, 7\) in the model, checkpoint 'x.pt', expected"):
        load_weights(_small(), wide, "checkpoint 'x.pt'")


# ------------------------------------------------------------------------------------ every raise, statically
ALLOWED_BUILTIN = {
    ("hwnas/__init__.py", "AttributeError"),  # lazy exports (module __getattr__), so hwnas.ops imports no models
    ("hwnas/data/__init__.py", "AttributeError"),  # module __getattr__: the protocol needs AttributeError
    ("hwnas/viz/__init__.py", "AttributeError"),
    ("hwnas/latency/io.py", "ValueError"),  # json parse_constant hook; read_table turns it into LatencyTableError
    ("hwnas/_io.py", "OSError"),  # read_regular: a FIFO fails like an unreadable file; each reader names it
    ("hwnas/ops/_batched.py", "ValueError"),  # mirrors F.batch_norm's own error, so fused == eager reference
}
BUILTIN = {"ValueError", "RuntimeError", "TypeError", "KeyError", "IndexError", "FileNotFoundError", "OSError",
           "FileExistsError", "AssertionError", "FloatingPointError", "NotImplementedError", "AttributeError"}


def _raises():
    from hwnas import errors

    ours = {n for n in dir(errors) if n.endswith("Error")}
    for root in ("hwnas", "kernels"):
        for f in sorted((REPO / root).rglob("*.py")):
            rel = f.relative_to(REPO).as_posix()
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                    fn = node.exc.func
                    name = fn.id if isinstance(fn, ast.Name) else getattr(fn, "attr", "")
                    literal = "".join(c.value for c in ast.walk(node.exc)
                                      if isinstance(c, ast.Constant) and isinstance(c.value, str))
                    yield rel, node.lineno, name, literal, name in ours


def test_every_raise_uses_an_hwnas_error_worded_what_where_expected():
    bad = []
    for rel, line, name, literal, ours in _raises():
        if name in BUILTIN and (rel, name) not in ALLOWED_BUILTIN:
            bad.append(f"{rel}:{line} raises {name}")
        elif ours and literal and "expected" not in literal:
            bad.append(f"{rel}:{line} {name} without 'expected': {literal[:60]!r}")
    assert not bad, "\n".join(bad)


def test_error_types_are_hwnas_errors():
    from hwnas import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), HwnasError)


# ------------------------------------------------------------------------------------------------- ONNX export
@pytest.fixture(scope="module")
def small_cdnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return hwnas.create_model("cdnet", width_mult=0.25, num_classes=5).eval()


@pytest.mark.slow
@pytest.mark.parametrize("size", [(29, 13), (80, 40)])  # the minimum; 80x40 has a 5-row (odd) map at FBLNeck
def test_onnx_export_works_at_every_size_the_model_runs_at(size, small_cdnet, tmp_path):
    """Every size the model runs at exports; 80x40 failed before FBLNeck split its stage-2 map with chunk."""
    pytest.importorskip("onnxruntime")
    from hwnas.deploy import check_onnx_parity, export_onnx

    images = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        scale = float(small_cdnet(images).abs().max())  # features of this init reach ~100: tolerance scales
    path = export_onnx(small_cdnet, tmp_path / "m.onnx", image_size=size)
    parity = check_onnx_parity(small_cdnet, path, images, atol=1e-4 * max(1.0, scale))
    assert parity.ok, parity


@pytest.mark.slow
def test_onnx_export_below_the_minimum_names_the_size_and_the_minimum(small_cdnet, tmp_path):
    from hwnas.deploy import export_onnx
    from hwnas.errors import ExportError
    from hwnas.models import min_input_size

    mh, mw = min_input_size("cdnet", width_mult=0.25, neck="fblneck", genotype=small_cdnet.config["genotype"])
    with pytest.raises(ExportError, match=rf"input size 8x8 is too small for cdnet, ONNX export to .*m.onnx, expected "
                                          rf"at least {mh}x{mw}"):
        export_onnx(small_cdnet, tmp_path / "m.onnx", image_size=(8, 8))
    assert list(tmp_path.iterdir()) == []


def test_onnx_exporter_failure_is_an_export_error_naming_size_and_constraint(tmp_path):
    from hwnas.deploy.onnx import export_error

    e = RuntimeError("Unsupported: ONNX export of operator adaptive_avg_pool2d, output size that are not factor of "
                     "input size.")
    err = export_error(e, (80, 40), tmp_path / "m.onnx")
    assert str(err).startswith("ONNX export failed at input size 80x40 (RuntimeError: Unsupported")
    assert "expected feature maps that are whole multiples of every adaptive pooling's output size" in str(err)
