"""More bad inputs found by an attack, each refused with one ``error: <what>, <where>, expected <what>`` line and
exit status 2, before any output is written: identities and cameras beyond int32 or in non-ASCII digits in image
names, broken YAML in overrides, float settings float32 cannot hold, model options ignored by ``report flops
--table``, a seed bound that differed between the flag and the config, repeated ``-o`` keys, control characters
echoed into messages."""
from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

import pytest

from hwnas import _cli, _config
from hwnas.cli import main as hwnas_main
from hwnas.data.datasets import MAX_ID, MSMT17, DatasetError, MarketFormat
from hwnas.data.synthetic import generate_synthetic_market
from hwnas.errors import ConfigError, UsageError
from hwnas.training.config import TrainConfig, TrainRunConfig

LINE = re.compile(r"^error: .+, .+, expected .+$")
KW = {"num_ids": 4, "images_per_id": 5, "num_cameras": 3, "image_size": (32, 16), "seed": 3}
TINY_TRAIN = ["train", "--model", "cdnet", "--synthetic", "--synthetic-ids", "2", "--synthetic-images-per-id", "3",
              "--epochs", "1", "--batch-size", "8", "--num-instances", "4", "--input-size", "64x32"]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and LINE.match(lines[0]) and "Traceback" not in err and "internal error" not in err, err
    assert lines[0].isprintable(), err
    return lines[0]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return generate_synthetic_market(tmp_path_factory.mktemp("syn") / "market", **KW)


def _copy_with(synthetic: Path, tmp_path: Path, split: str, name: str) -> Path:
    root = tmp_path / "data"
    shutil.copytree(synthetic, root)
    (root / "SYNTHETIC.json").unlink()
    image = next((root / split).iterdir()).read_bytes()
    (root / split / name).write_bytes(image)
    return root


# 1. identities and cameras: int32 at most, ASCII digits only ------------------------------------------------------

@pytest.mark.parametrize(("split", "name", "shown"), [
    ("query", "99999999999999999999999_c1s1_000001_00.jpg", "pid 99999999999999999999999 / camera 1"),
    ("query", "0005_c99999999999999999999s1_000001_00.jpg", "pid 5 / camera 99999999999999999999"),
    ("bounding_box_test", f"{MAX_ID + 1}_c1s1_000001_00.jpg", f"pid {MAX_ID + 1} / camera 1"),
    ("bounding_box_train", f"0001_c{MAX_ID + 1}s1_000001_00.jpg", f"pid 1 / camera {MAX_ID + 1}"),
    ("query", "9" * 200 + "_c1s1.jpg", "pid 999999999999999999999999... (200 digits) / camera 1"),
])
def test_pid_and_camera_beyond_int32_are_refused_naming_the_file(synthetic, tmp_path, split, name, shown):
    root = _copy_with(synthetic, tmp_path, split, name)
    with pytest.raises(DatasetError, match=re.escape(shown) + r", '.*" + re.escape(name[-20:]) + r"', expected pid "
                       rf"-1\.\.{MAX_ID} and camera 1\.\.{MAX_ID}"):
        MarketFormat(root)


def test_largest_pid_and_camera_are_read(synthetic, tmp_path):
    root = _copy_with(synthetic, tmp_path, "bounding_box_test", f"{MAX_ID}_c{MAX_ID}s1.jpg")
    assert any(pid == MAX_ID and cam == MAX_ID - 1 for _, pid, cam in MarketFormat(root).gallery)


@pytest.mark.parametrize("name", ["\u0660\u0660\u06605_c2s1_000020_01.jpg", "0005_c\u0662s1_000020_01.jpg",
                                  "\uff10\uff10\uff10\uff15_c2s1.jpg"])
def test_non_ascii_digits_are_not_read_as_ids(synthetic, tmp_path, name):
    root = _copy_with(synthetic, tmp_path, "query", name)
    with pytest.raises(DatasetError, match="does not follow the market-format naming"):
        MarketFormat(root)


def test_evaluate_data_info_refuses_a_huge_pid(synthetic, tmp_path, capsys):
    root = _copy_with(synthetic, tmp_path, "query", "99999999999999999999999_c1s1_000001_00.jpg")
    assert hwnas_main(["data", "info", "--data-root", str(root), "--dataset", "market-format"]) == 2
    assert "pid 99999999999999999999999 / camera 1" in one_error_line(capsys)


def _msmt(tmp_path: Path, query_line: str) -> Path:
    root = tmp_path / "MSMT17_V1"
    for sub, name in (("train", "0000/0000_000_01_a_0_0.jpg"), ("test", "0000/0000_000_03_b_1_0.jpg")):
        (root / sub / name).parent.mkdir(parents=True, exist_ok=True)
        (root / sub / name).write_bytes(b"")
    (root / "list_train.txt").write_text("0000/0000_000_01_a_0_0.jpg 0\n")
    (root / "list_val.txt").write_text("")
    (root / "list_query.txt").write_text(query_line + "\n", encoding="utf-8")
    (root / "list_gallery.txt").write_text("0000/0000_000_03_b_1_0.jpg 0\n")
    return tmp_path


@pytest.mark.parametrize(("line", "match"), [
    ("0000/0000_000_03_b_1_0.jpg 99999999999999999999999", "pid 99999999999999999999999 / camera 3"),
    (f"0000/0000_000_{MAX_ID + 1}_b_1_0.jpg 0", f"pid 0 / camera {MAX_ID + 1}"),
    ("0000/0000_000_03_b_1_0.jpg " + "7" * 5000, r"\(5000 digits\)"),  # not Python's 4300-digit int() error
    ("0000/0000_000_03_b_1_0.jpg \u0665", "expected 'relative/path.jpg pid'"),
    ("0000/0000_000_\u0660\u0663_b_1_0.jpg 0", "has no camera field"),
])
def test_msmt17_list_ids_are_ascii_and_int32(tmp_path, line, match):
    with pytest.raises(DatasetError, match=match):
        MSMT17(_msmt(tmp_path, line), check_counts=False)


def test_a_file_name_with_a_newline_is_echoed_escaped(synthetic, tmp_path):
    root = _copy_with(synthetic, tmp_path, "query", "bad\nname.jpg")
    with pytest.raises(DatasetError) as e:
        MarketFormat(root)
    assert "bad\\nname.jpg" in str(e.value) and str(e.value).isprintable()


# 2. broken YAML in an override (and in a --config file) -----------------------------------------------------------

@pytest.mark.parametrize("text", ["train.milestones=[1,,2]", "model_options={width_mult:", "train.lr='a",
                                  "train.lr=*undefined", "model_options={a: 1, a: 2}", "train.lr=\t",
                                  "train.lr=!!python/object:os.system x", "train.lr=" + "[" * 3000 + "]" * 3000])
def test_an_override_with_broken_yaml_is_a_config_error(text):
    with pytest.raises(ConfigError, match=r"override .*expected") as e:
        _config.override_layer([text])
    assert "\n" not in str(e.value) and str(e.value).isprintable()


def test_cli_override_with_broken_yaml_is_one_line(capsys):
    assert hwnas_main([*TINY_TRAIN, "train.milestones=[1,,2]"]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: value is not valid YAML") and "override train.milestones=[1,,2]" in line


def test_config_file_with_broken_yaml_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: {milestones: [1,,2]}\n")
    assert hwnas_main([*TINY_TRAIN, "--config", str(bad)]) == 2
    assert f"config file {bad}" in one_error_line(capsys)


# 3. float settings float32 cannot hold ----------------------------------------------------------------------------

@pytest.mark.parametrize(("flag", "value"), [
    ("--lr", "1e308"), ("--lr", "1e30"), ("--lr", "1e-320"), ("--lr", "1e-40"), ("--weight-decay", "1e308"),
    ("--weight-decay", "1e-320"), ("--margin", "1e308"), ("--momentum", "1e-320"), ("--gamma", "1e308"),
    ("--gamma", "1e-300"), ("--label-smoothing", "0.9999999999999999"),
])
def test_float_settings_out_of_range_are_refused_before_any_output(tmp_path, capsys, flag, value):
    out = tmp_path / "run"
    assert hwnas_main([*TINY_TRAIN, "--output", str(out), flag, value]) == 2
    line = one_error_line(capsys)
    assert f", {flag}, expected" in line
    assert not out.exists()  # no config.json / config.yaml / train.log left behind


@pytest.mark.parametrize("override", ["train.lr=1e308", "train.weight_decay=1e308", "train.margin=1e300",
                                      "train.lr=1e-320"])
def test_float_settings_out_of_range_in_overrides_and_files(tmp_path, capsys, override):
    assert hwnas_main([*TINY_TRAIN, "--output", str(tmp_path / "o"), override]) == 2
    assert f"override {override}: key {override.split('=')[0]}" in one_error_line(capsys)
    key, value = override.split("=")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"train: {{{key.split('.')[1]}: {value}}}\n")
    assert hwnas_main([*TINY_TRAIN, "--output", str(tmp_path / "o"), "--config", str(cfg)]) == 2
    assert f"config file {cfg}: key {key}" in one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_a_schedule_that_underflows_or_overflows_is_refused():
    with pytest.raises(UsageError, match=r"bad schedule .*TrainConfig.gamma, expected every lr of the schedule"):
        TrainConfig(epochs=9, gamma=1e-6, milestones=(1, 2, 3, 4, 5, 6))  # 0.065e-36: 0 in float32
    with pytest.raises(UsageError, match="bad schedule"):
        TrainConfig(epochs=9, gamma=10.0, milestones=(1, 2, 3, 4, 5))  # 0.065 * 10**5 = 6500 > 1000
    TrainConfig(epochs=9, gamma=0.1, milestones=(2, 4, 6), warmup_epochs=1)  # an ordinary schedule
    TrainConfig(lr=1e-10, momentum=0.0, weight_decay=0.0, margin=0.0, label_smoothing=0.0)  # the lower ends
    TrainConfig(lr=1e3, weight_decay=1e3, margin=1e4, label_smoothing=0.999, momentum=0.99, milestones=())


# 4. report flops --table with model options -----------------------------------------------------------------------

@pytest.mark.parametrize("extra", [["--model", "cnet"], ["--genotype", "cdnet-top1"], ["--width-mult", "0.5"],
                                   ["--input-size", "64x32"], ["--scope", "backbone"], ["--params-scope", "total"],
                                   ["--model", "cdnet"]])  # even the default value: it would not apply
@pytest.mark.parametrize("table", ["3", "5"])
def test_report_flops_table_refuses_model_options(capsys, table, extra):
    assert hwnas_main(["report", "flops", "--table", table, *extra]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {extra[0]} given with --table {table}")


def test_report_flops_table_names_every_ignored_flag(capsys):
    assert hwnas_main(["report", "flops", "--model", "cnet", "--table", "3", "--genotype", "cdnet-top1",
                       "--model", "cnet"]) == 2
    assert one_error_line(capsys).startswith("error: --model, --genotype given with --table 3")


# 5. one seed bound everywhere --------------------------------------------------------------------------------------

def test_seed_bound_is_the_same_for_the_flag_and_the_config(capsys):
    assert _cli.SEED_MAX == _cli.INT_MAX == 2**31 - 1
    assert _cli.seed(str(_cli.SEED_MAX)) == _cli.SEED_MAX
    with pytest.raises(argparse.ArgumentTypeError, match="between 0 and 2147483647"):
        _cli.seed("4294967295")
    assert TrainConfig(seed=_cli.SEED_MAX).seed == _cli.SEED_MAX
    with pytest.raises(UsageError, match="TrainConfig.seed, expected an integer between 0 and 2147483647"):
        TrainConfig(seed=2**31)
    assert hwnas_main([*TINY_TRAIN, "--seed", "4294967295"]) == 2
    assert one_error_line(capsys) == ("error: bad value '4294967295', --seed, expected an integer between 0 and "
                                      "2147483647")


# 6. repeated -o keys ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["-o", "width_mult=0.5", "-o", "width_mult=0.25"],
    ["--width-mult", "0.25", "-o", "width_mult=0.5", "-o", "width_mult=0.25"],
    ["-o", "width_mult=0.5", "-o", "width_mult=0.25", "--width-mult", "0.25"],
])
def test_train_refuses_a_model_option_given_twice_with_different_values(tmp_path, capsys, argv):
    assert hwnas_main([*TINY_TRAIN, "--output", str(tmp_path / "o"), *argv]) == 2
    line = one_error_line(capsys)
    assert "width_mult" in line and ("--model-option" in line or "--width-mult" in line)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv", [
    ["-o", "width_mult=0.5", "-o", "width_mult=0.25"],
    ["--width-mult", "0.25", "-o", "width_mult=0.5", "-o", "width_mult=0.25"],
])
def test_extract_refuses_a_model_option_given_twice_with_different_values(synthetic, tmp_path, capsys, argv):
    (tmp_path / "img").mkdir()
    shutil.copy(next((synthetic / "query").iterdir()), tmp_path / "img" / "a.jpg")
    assert hwnas_main(["extract", "--model", "cdnet", *argv, "--images", str(tmp_path / "img"),
                       "--output", str(tmp_path / "f.npz")]) == 2
    assert "width_mult" in one_error_line(capsys)


def test_the_same_value_repeated_passes():
    layer = _config.flag_layer([("model_options.width_mult", 0.5, "--model-option"),
                                ("model_options.width_mult", 0.5, "--model-option"),
                                ("model_options.width_mult", 0.5, "--width-mult")])
    assert layer.values == {"model_options": {"width_mult": 0.5}}
    assert _config.override_layer(["train.lr=0.1", "train.lr=0.1"]).values == {"train": {"lr": 0.1}}
    with pytest.raises(ConfigError, match="train.lr given twice with different values"):
        _config.override_layer(["train.lr=0.1", "train.lr=0.2"])
    with pytest.raises(UsageError, match="given twice"):  # true is not 1
        _config.flag_layer([("train.amp", True, "-o"), ("train.amp", 1, "-o")])


# 7. control characters are escaped in every echo ------------------------------------------------------------------

def test_clip_escapes_control_characters():
    assert _cli.clip("a\0b\nc\x1b[31m") == "a\\x00b\\nc\\x1b[31m"
    assert _cli.clip("x" * 100).endswith("...") and _cli.clip("plain é") == "plain é"
    assert _cli.quote("a\0b") == "'a\\x00b'"


def test_load_weights_with_a_nul_byte_is_refused_printably(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text('load_weights: "a\\0b"\n')
    assert hwnas_main([*TINY_TRAIN, "--output", str(tmp_path / "o"), "--config", str(cfg)]) == 2
    line = one_error_line(capsys)
    assert "\0" not in line and "'\\x00'" in line and f"config file {cfg}: key load_weights" in line
    with pytest.raises(UsageError, match="TrainRunConfig.load_weights"):
        TrainRunConfig(load_weights="w\n.pt")


def test_a_dataset_root_with_a_nul_byte_is_echoed_escaped(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text('data: {root: "a\\0b", dataset: market-format}\n')
    assert hwnas_main(["train", "--model", "cdnet", "--epochs", "1", "--output", str(tmp_path / "o"),
                       "--config", str(cfg)]) == 2
    assert "a\\x00b" in one_error_line(capsys)


def test_a_config_file_name_and_an_override_with_control_characters_are_echoed_escaped(tmp_path, capsys):
    cfg = tmp_path / "we\nird.yaml"
    cfg.write_text("train: {lr: x}\n")
    assert hwnas_main(["train", "--model", "cdnet", "--synthetic", "--config", str(cfg)]) == 2
    assert "we\\nird.yaml: key train.lr" in one_error_line(capsys)
    assert hwnas_main(["train", "--model", "cdnet", "--synthetic", "train.lr=x\x1b[2J"]) == 2
    assert "\\x1b" in one_error_line(capsys)


@pytest.mark.parametrize("changes,field", [
    ({"lr": 1e308}, "SearchConfig.lr"), ({"alpha_lr": 1e-320}, "SearchConfig.alpha_lr"),
    ({"weight_decay": 1e308}, "SearchConfig.weight_decay"), ({"momentum": 1e-320}, "SearchConfig.momentum"),
    ({"alpha_betas": (1e-320, 0.9)}, "SearchConfig.alpha_betas"), ({"latency_weight": 1e308}, "latency_weight"),
    ({"alpha_gamma": 1e-6, "alpha_milestones": (1, 2, 3, 4, 5, 6)}, "SearchConfig.alpha_gamma"),
    ({"triplet_margin": 1e308}, "SearchConfig.triplet_margin"), ({"alpha_init": 1e300}, "SearchConfig.alpha_init"),
])
def test_search_float_settings_stay_in_float32_ranges(changes, field):
    from hwnas.search.config import SearchConfig, short_config

    SearchConfig(), short_config()  # the defaults and the main job's schedule are inside
    with pytest.raises(UsageError, match=field):
        SearchConfig(**changes)


def test_search_flag_beyond_float32_is_one_error_line(capsys):
    from hwnas.search.__main__ import main

    for argv, where in ((["--latency-weight", "1e308"], "--latency-weight"), (["search.lr=1e308"], "key search.lr")):
        assert main([*argv, "--output", "/nonexistent-hwnas/x"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: bad value 1e+308") and where in err[0], err
