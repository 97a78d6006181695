"""The model a command runs: a training checkpoint (``--checkpoint``) or a registered model with random weights
(``--model NAME -o key=value``, an untrained baseline), and its input size. Shared by ``extract`` and ``export``."""
from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

import hwnas
from hwnas import _cli, _weights
from hwnas._limits import MAX_INPUT_SIDE
from hwnas.errors import CheckpointError, UsageError
from hwnas.models import check_input_size, model_options

DEFAULT_INPUT_SIZE = (256, 128)


def parse_option(text: str) -> tuple[str, object]:
    """``key=value`` with value parsed as JSON when possible (numbers, booleans), else kept as a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"bad value {text!r}, expected key=value like width_mult=0.5")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except ValueError:  # not JSON (or an integer of more digits than Python converts): the text itself
        return key, value


def width_mult_option(width_mult: float, model_option: list[tuple[str, object]]) -> tuple[str, float]:
    """``--width-mult`` as the model option ``("width_mult", width_mult)``; a different ``-o width_mult=`` given
    with it is refused (:class:`UsageError`). Shared by train, extract and export."""
    given = [v for k, v in model_option if k == "width_mult"]
    other = next((v for v in given if not _cli.same_value(v, width_mult)), None)  # every -o, not only the last
    if other is not None:
        raise UsageError(f"--width-mult {width_mult:g} and -o width_mult={_cli.clip(str(other))}, --width-mult, "
                         "expected one width multiplier")
    return "width_mult", width_mult


def option_dict(model_option: list[tuple[str, object]]) -> dict[str, object]:
    """The ``-o key=value`` pairs as a dict; a key repeated with a different value is refused (:class:`UsageError`),
    never last-wins (the same value repeated passes)."""
    options: dict[str, object] = {}
    for key, value in model_option:
        if key in options and not _cli.same_value(options[key], value):
            raise UsageError(f"model option {_cli.clip(key)} given twice ({_cli.clip(repr(options[key]))} then "
                             f"{_cli.clip(repr(value))}), --model-option, expected each option once (or the same "
                             "value repeated)")
        options[key] = value
    return options


def add_model_source(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model (a training checkpoint, or a registered model with random weights)")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=_cli.path, help="a last.pt written by hwnas train")
    src.add_argument("--model", help=f"a registered model with random weights (an untrained baseline), one of: "
                                     f"{', '.join(hwnas.list_models())}")
    g.add_argument("--model-option", "-o", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                   help="option of --model (repeatable), e.g. genotype=cdnet-top1, width_mult=0.5")
    g.add_argument("--width-mult", type=_cli.width_mult, metavar="BETA",
                   help="width multiplier beta of --model (the same as -o width_mult=BETA)")
    _cli.add_input_size(g, None, "input size HxW in pixels (default: the checkpoint's training size, else "
                                 f"{DEFAULT_INPUT_SIZE[0]}x{DEFAULT_INPUT_SIZE[1]})")
    _cli.add_seed(g)


@dataclass
class LoadedModel:
    """The model in eval mode, its name and options, the input size, and where it came from."""

    model: nn.Module
    name: str
    options: dict[str, object]
    input_size: tuple[int, int]
    source: str  # the checkpoint path, or "random weights (seed N)"


def load_checkpoint_model(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """:func:`hwnas.training.checkpoint.model_from_checkpoint` with PyTorch's warnings during the load kept off
    stderr (a foreign pickle makes torch warn about its protocol before the error): one error line."""
    from hwnas.training.checkpoint import model_from_checkpoint

    with _weights.quiet_warnings(f"checkpoint '{path}'"):
        return model_from_checkpoint(path, device)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def checkpoint_input_size(ckpt: dict[str, Any], path: Path) -> tuple[int, int]:
    """The training input size (height, width) a checkpoint's ``config`` records (each absent one: the default
    256 x 128), checked: whole numbers of pixels from 1 to :data:`MAX_INPUT_SIDE` (:class:`CheckpointError`)."""
    where = f"checkpoint '{path}'"
    cfg = ckpt.get("config", {})
    if not isinstance(cfg, dict):
        raise CheckpointError(f"config is a {type(cfg).__name__}, {where}, expected a dict of the training "
                              "settings (config) as hwnas train writes it")
    size = []
    for key, default in (("height", DEFAULT_INPUT_SIZE[0]), ("width", DEFAULT_INPUT_SIZE[1])):
        value = cfg.get(key, default)
        if not _whole(value) or not 1 <= value <= MAX_INPUT_SIDE:
            raise CheckpointError(f"config {key} is {value!r}, {where}, expected a whole number of pixels from 1 to "
                                  f"{MAX_INPUT_SIDE} (or --input-size HxW)")
        size.append(value)
    return size[0], size[1]


def checkpoint_epoch(ckpt: dict[str, Any], path: Path) -> int:
    """The checkpoint's ``epoch``, checked: a whole number >= 0 (:class:`CheckpointError`)."""
    epoch = ckpt.get("epoch")
    if not _whole(epoch) or epoch < 0:
        raise CheckpointError(f"epoch is {epoch!r}, checkpoint '{path}', expected a whole number >= 0 (the epochs "
                              "trained)")
    return epoch


def model_from_args(a: argparse.Namespace, device: torch.device | str = "cpu") -> LoadedModel:
    """Build or load the model the options describe; the input size is checked against the model's minimum."""
    if getattr(a, "width_mult", None) is not None:
        if a.checkpoint is not None:
            raise UsageError("--width-mult with --checkpoint, --width-mult, expected no model options (the checkpoint "
                             "records its model's)")
        a.model_option = [*a.model_option, width_mult_option(a.width_mult, a.model_option)]
    if a.checkpoint is not None:
        if a.model_option:
            raise UsageError("--model-option with --checkpoint, --model-option, expected no options (the checkpoint "
                             "records its model's)")
        model, ckpt = load_checkpoint_model(a.checkpoint, device)
        size = a.input_size or checkpoint_input_size(ckpt, a.checkpoint)
        option = "--input-size" if a.input_size else f"config height/width of checkpoint '{a.checkpoint}'"
        name, options, source = ckpt["model_name"], dict(ckpt["model_options"]), str(a.checkpoint)
    else:
        name, options = a.model, option_dict(a.model_option)
        if name not in hwnas.list_models():
            raise UsageError(f"unknown model {name!r}, --model, expected one of {', '.join(hwnas.list_models())}")
        unknown = sorted(set(options) - set(model_options(name)))
        if unknown:
            raise UsageError(f"unknown model option(s) {', '.join(unknown)}, --model-option, expected options of "
                             f"{name}: {', '.join(model_options(name))}")
        torch.manual_seed(a.seed)
        model = hwnas.create_model(name, **options).to(device)
        size, source = a.input_size or DEFAULT_INPUT_SIZE, f"random weights (seed {a.seed})"
        option = "--input-size"
    check_input_size(name, tuple(size), option, **{k: v for k, v in options.items() if k != "num_classes"})
    return LoadedModel(model.eval(), name, options, tuple(size), source)
