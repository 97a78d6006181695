"""Config files and key=value overrides (hwnas/_config.py): precedence, every kind of bad file, round trips.

The schemas are the commands' frozen dataclasses; the tests walk their fields rather than listing them, so a
field added to SearchConfig or TrainConfig is covered without editing this file.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch

from hwnas import _config
from hwnas.cli import main as hwnas_main
from hwnas.errors import ConfigError, UsageError
from hwnas.evaluation.config import EvalRunConfig
from hwnas.search.config import SearchConfig
from hwnas.search.run_config import SearchRunConfig, resolve_search_run
from hwnas.training.config import TrainConfig, TrainRunConfig

RUN_CONFIGS = [TrainRunConfig(), SearchRunConfig(), EvalRunConfig()]


def write(tmp_path: Path, text: str | bytes, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return path


def test_precedence_defaults_file_flags_overrides(tmp_path):
    f = write(tmp_path, "model: cdnet\ntrain: {lr: 0.01, epochs: 9, margin: 0.5, milestones: [3]}\n")
    layers = [_config.file_layer(f), _config.flag_layer([("train.epochs", 7, "--epochs"), ("train.lr", 0.02, "--lr")]),
              _config.override_layer(["train.lr=0.03"])]
    r = _config.resolve(TrainRunConfig(), layers)
    t = r.config.train
    assert (t.margin, t.epochs, t.lr, t.milestones) == (0.5, 7, 0.03, (3,))  # file < flag < override
    assert t.momentum == TrainConfig.momentum  # untouched default
    assert r.provenance["train.margin"] == f"config file {f}"
    assert r.provenance["train.epochs"] == "--epochs"
    assert r.provenance["train.lr"] == "override train.lr=0.03"


@pytest.mark.parametrize("base", RUN_CONFIGS, ids=lambda c: type(c).__name__)
def test_every_run_config_round_trips_through_yaml(base, tmp_path):
    path = _config.write_config(tmp_path / "config.yaml", base, "a header line")
    assert path.read_text().startswith("# a header line\n")
    assert _config.load_config(path, type(base)()) == base


@pytest.mark.parametrize("name", [f.name for f in dataclasses.fields(SearchConfig)])
def test_every_search_field_is_a_config_key(name, tmp_path):
    """Each field of SearchConfig (whatever issue adds it) is read from a file with its type, from the paper's
    schedule onto the short one's base."""
    from omegaconf import OmegaConf

    value = getattr(SearchConfig(), name)
    f = write(tmp_path, OmegaConf.to_yaml({"search": {name: list(value) if isinstance(value, tuple) else value}}))
    run = _config.resolve(SearchRunConfig(search=SearchConfig().replace(seed=1, epochs=3)),
                          [_config.file_layer(f)]).config
    assert getattr(run.search, name) == value


BAD_FILES = [
    ("train:\n  lrr: 1\n", "unknown key 'train.lrr'", "lr, momentum"),
    ("lr: 1\n", "did you mean train.lr?", "model, model_options, data, train"),
    ("train: {lr: .nan}\n", "non-finite number nan", "key train.lr"),
    ("train: {lr: .inf}\n", "non-finite number inf", "key train.lr"),
    ("train: {epochs: 1.5}\n", "bad value 1.5", "an integer"),
    ("train: {lr: fast}\n", "bad value 'fast'", "a number"),
    ("train: {milestones: [1, x]}\n", "key train.milestones", "a list of integers"),
    ("train: {batch_size: 6}\n", "key train.batch_size", "a multiple of num_instances"),
    ("data: {dataset: nope}\n", "unknown dataset 'nope'", "market-format"),
    ("model: ${nowhere}\n", "cannot resolve an interpolation", "key model"),
    ("- 1\n- 2\n", "the top level is a list", "a mapping"),
    ("model: a\nmodel: b\n", "duplicate key model", "line 2"),
    ("train: {lr: [}\n", "not valid YAML", "line 1"),
    ("a: " + "[" * 40 + "]" * 40 + "\n", "nested", "at most 16 levels"),
    ("a: " + "[" * 50_000 + "]" * 50_000 + "\n", "nested", "at most 16 levels"),  # past Python's recursion limit
]


@pytest.mark.parametrize(("text", "what", "expected"), BAD_FILES, ids=[b[1][:30] for b in BAD_FILES])
def test_bad_config_files_name_the_file_and_key(text, what, expected, tmp_path):
    f = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        _config.resolve(TrainRunConfig(), [_config.file_layer(f)])
    message = str(info.value)
    assert what in message and expected in message and str(f) in message and "expected" in message, message


def test_unreadable_non_utf8_large_and_alias_bomb_files(tmp_path):
    cases = {
        "missing": (tmp_path / "missing.yaml", "cannot read the file"),
        "latin1": (write(tmp_path, "model: caf\xe9\n".encode("latin-1"), "l.yaml"), "not UTF-8"),
        "folder": (tmp_path, "cannot read the file"),
        "large": (write(tmp_path, "# " + "x" * (_config.MAX_BYTES + 10), "big.yaml"), "larger than"),
    }
    bomb = "a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(7))
    cases["bomb"] = (write(tmp_path, bomb, "bomb.yaml"), "aliases are expanded")
    for name, (path, what) in cases.items():
        with pytest.raises(ConfigError, match=what):
            _config.load_yaml(path)
    assert _config.load_yaml(write(tmp_path, "", "empty.yaml")) == {}


def test_overrides_parse_yaml_values_and_refuse_bad_ones():
    layer = _config.override_layer(["train.milestones=[20,30]", "model_options.genotype=cdnet-top1", "train.amp=false"])
    run = _config.resolve(TrainRunConfig(), [layer]).config
    assert run.train.milestones == (20, 30) and run.model_options == {"genotype": "cdnet-top1"}
    assert run.train.amp is False
    for bad, what in (("train.lr", "bad override"), ("=3", "bad override"), ("lr=1", "did you mean train.lr"),
                      ("train.lr=nan", "non-finite"), ("train.batch_size=abc", "bad value 'abc'")):
        with pytest.raises(ConfigError, match=what):
            _config.resolve(TrainRunConfig(), [_config.override_layer([bad])])


def test_a_flag_error_names_the_flag_not_the_field():
    with pytest.raises(UsageError, match=r"^bad value 6, --batch-size, expected a multiple"):
        _config.resolve(TrainRunConfig(), [_config.flag_layer([("train.batch_size", 6, "--batch-size")])])


def test_changes_and_resume_refusal(tmp_path):
    saved = TrainRunConfig(model="cdnet")
    path = _config.write_config(tmp_path / "config.yaml", saved)
    same = _config.resume_config(path, TrainRunConfig(), [_config.flag_layer([("model", "cdnet", "--model")])])
    assert same == saved
    with pytest.raises(ConfigError, match=r"train\.lr 0\.065 -> 0\.5 \(--lr\)") as info:
        _config.resume_config(path, TrainRunConfig(), [_config.flag_layer([("train.lr", 0.5, "--lr")])])
    assert str(path) in str(info.value)
    assert _config.changes(saved, dataclasses.replace(saved, train=saved.train.replace(milestones=(5,)))) == [
        "train.milestones [150, 225, 300] -> [5]"]


def test_search_schedule_follows_the_data_and_epochs_scale_milestones(tmp_path):
    synthetic = resolve_search_run([_config.flag_layer([("search.epochs", 16, "--epochs")])])
    # short: 32 epochs, milestone 28, 8 warm-up epochs -> the same fractions of 16
    assert synthetic.search.width_mult == 0.5 and synthetic.search.alpha_milestones == (14,)
    assert synthetic.search.warmup_epochs == 4
    short = resolve_search_run([_config.override_layer(["search.epochs=2"])])  # the warm-up shrinks with it
    assert short.search.warmup_epochs == 0 and short.search.alpha_milestones == ()  # 28/32 of 2 = 2: never applies
    real = resolve_search_run([_config.file_layer(write(tmp_path, "data: {root: /data/market}\nsearch: {epochs: 24}\n"))])
    assert real.search.width_mult == 1.0 and real.search.alpha_milestones == (8, 16)  # paper: 240 epochs, (80, 160)
    kept = resolve_search_run([_config.override_layer(["search.epochs=24", "search.alpha_milestones=[2]"])])
    assert kept.search.alpha_milestones == (2,)


def test_cli_reports_config_errors_cleanly(tmp_path, capsys):
    bad = write(tmp_path, "train:\n  lrr: 0.1\n")
    for argv in (["train", "--config", str(bad), "--synthetic"], ["evaluate", "--config", str(bad)],
                 ["search", "--config", str(bad)]):
        assert hwnas_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: unknown key") and str(bad) in err and "Traceback" not in err, err
    assert hwnas_main(["train", "--synthetic", "train.lr=abc"]) == 2
    assert "override train.lr=abc: key train.lr, expected a number" in capsys.readouterr().err
    assert hwnas_main(["train", "--synthetic"]) == 2
    assert "no model given, --model" in capsys.readouterr().err


def test_a_search_with_a_table_is_hardware_aware_by_default():
    from hwnas.latency import load_table
    from hwnas.search.run_config import DEFAULT_LATENCY_PRESSURE, default_latency_weight

    table = [_config.flag_layer([("latency_table", "rtx2080", "--latency-table")])]
    run = resolve_search_run(table)
    lut = load_table("rtx2080", space="cdnet")
    uniform_ms = float(lut.expected_latency_ms(torch.full((6, 12), 1 / 12), "cdnet"))
    # the latency term starts at the pressure, whatever the table's scale
    assert run.search.latency_weight == pytest.approx(DEFAULT_LATENCY_PRESSURE / uniform_ms, rel=1e-3)
    assert default_latency_weight("cpu", "cdnet") > 2 * run.search.latency_weight  # a faster table, a larger weight
    paper = resolve_search_run(table + [_config.flag_layer([("search.latency_weight", 0.0, "--latency-weight")])])
    assert paper.search.latency_weight == 0.0  # weight 0 given: the paper's accuracy-only search
    target = resolve_search_run(table + [_config.override_layer(["search.latency_target_ms=100"])])
    assert target.search.latency_weight == DEFAULT_LATENCY_PRESSURE  # max(E/T - 1, 0) is already relative
    assert resolve_search_run([]).search.latency_weight == 0.0  # no table, no latency term
    sweep = resolve_search_run(table + [_config.flag_layer([("sweep_latency_weights", [0.0, 1.0], "--sweep")])])
    assert sweep.search.latency_weight == 0.0  # a sweep sets each weight itself


@pytest.mark.parametrize("value", ["010", "1:00", "0x10", "0b11", "1_0", "1_0.5"])
def test_yaml_1_1_number_spellings_are_refused_not_reread(value, tmp_path):
    """YAML 1.1 reads 010 as 8 and 1:00 as 60: a config must not silently mean another number."""
    from hwnas._config import ConfigError as _ConfigError
    from hwnas._config import load_yaml, override_layer

    with pytest.raises(_ConfigError, match=f"ambiguous number '{value}'.*train.epochs={value}"):
        override_layer([f"train.epochs={value}"])
    path = tmp_path / "c.yaml"
    path.write_text(f"train:\n  epochs: {value}\n")
    with pytest.raises(_ConfigError, match=f"ambiguous number '{value}'"):
        load_yaml(path)
    path.write_text(f"train:\n  epochs: 10\n  lr: 0.01\n  name: '{value}'\n")  # plain decimals and quoted text pass
    assert load_yaml(path)["train"] == {"epochs": 10, "lr": 0.01, "name": value}


@pytest.mark.parametrize("text", ["train.epochs='5'", 'train.epochs="5"', "train.lr='0.1'", "train.amp='true'"])
def test_quoted_numbers_are_refused_not_converted(text, tmp_path):
    """OmegaConf converts the string '5' to 5 for an int field; a quoted value in a config is a typo or a template
    gone wrong, so it is refused with the key named. Interpolations stay strings that resolve."""
    from hwnas._config import ConfigError as _ConfigError
    from hwnas._config import file_layer, override_layer, resolve
    from hwnas.training.config import TrainRunConfig as TrainRun

    with pytest.raises(_ConfigError, match=r"quoted value .*key train\.(epochs|lr|amp), expected .*unquoted"):
        resolve(TrainRun(), [override_layer([text])])
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  epochs: '5'\n")
    with pytest.raises(_ConfigError, match="quoted value '5'"):
        resolve(TrainRun(), [file_layer(path)])
    run = resolve(TrainRun(), [override_layer(["train.epochs=7", "train.eval_every=${train.epochs}"])]).config
    assert (run.train.epochs, run.train.eval_every) == (7, 7)


@pytest.mark.parametrize(("text", "what"), [
    ("train.epochs=٥", "bad value '٥'"),  # int() reads other scripts' digits
    ("train.amp=y", "bad value 'y'"),  # OmegaConf reads y/n as booleans
    ("train.amp=1", "bad value 1"),  # ... and 1 / 5 as True
    ("train.epochs=true", "bad value True"),
    ("train.epochs=99999999999", "at most 2147483647"),
    ("train.milestones=[1,'2']", "key train.milestones"),
    ("data.root=1.10", "unquoted float 1.1"),  # the folder '1.10' would become '1.1'
    ("train.epochs=null", "bad value null"),  # was OmegaConf's own message
    ("data.dataset=true", "YAML reads yes/true as booleans"),
])
def test_values_omegaconf_would_convert_are_refused(text, what):
    from hwnas._config import ConfigError as _ConfigError
    from hwnas._config import override_layer, resolve
    from hwnas.training.config import TrainRunConfig as TrainRun

    with pytest.raises(_ConfigError, match=re.escape(what)):
        resolve(TrainRun(), [override_layer([text])])
    run = resolve(TrainRun(), [override_layer(["data.root='1.10'", "train.amp=true", "train.lr=1"])]).config
    assert (run.data.root, run.train.amp, run.train.lr) == ("1.10", True, 1.0)
