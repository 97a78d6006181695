"""Switch a model to eval mode for a while and give every submodule its own train/eval flag back afterwards.

``model.train(was_training)`` is not a restore: it sets *every* submodule to the top-level flag, so a submodule the
caller had frozen in eval mode (a BatchNorm kept at its running statistics while fine-tuning) comes back in training
mode. :func:`eval_mode` records each module's flag and restores them one by one.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


def training_flags(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    """Each module of ``model`` (itself included) with its ``training`` flag."""
    return [(m, m.training) for m in model.modules()]


def restore_flags(flags: list[tuple[nn.Module, bool]]) -> None:
    for module, training in flags:
        module.training = training


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` inside the block; afterwards every submodule has the flag it had before."""
    flags = training_flags(model)
    model.eval()
    try:
        yield model
    finally:
        restore_flags(flags)


__all__ = ["eval_mode", "restore_flags", "training_flags"]
