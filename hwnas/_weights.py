"""Load a checkpoint's weights into a model with short, specific errors instead of PyTorch's full key lists.

- Weights saved from ``DataParallel`` / ``DistributedDataParallel`` (every key starts with ``module.``) or from a
  ``torch.compile`` wrapper (``_orig_mod.``) load after the prefix is dropped; a log line says so.
- Any other mismatch raises :class:`hwnas.errors.CheckpointError` naming the cause: the counts of missing and
  unexpected keys with a few names each, or the first tensor whose shape differs (with both shapes), that holds
  no values (the ``meta`` device), is not a dense tensor, or whose dtype is of another kind than the model's
  (complex or integer values for a floating-point parameter, ...) or whose values do not fit the model's dtype.
- :func:`load_failure` words why ``torch.load(..., weights_only=True)`` failed without PyTorch's advice to retry
  with ``weights_only=False``; :func:`quiet_warnings` keeps PyTorch's warnings during a load off stderr.
"""
from __future__ import annotations

import contextlib
import logging
import math
import re
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from hwnas._argtypes import INT_MAX  # a step count beyond it is an edit: no run takes that many steps
from hwnas.errors import CheckpointError

logger = logging.getLogger(__name__)

WRAPPER_PREFIXES: tuple[str, ...] = ("module.", "_orig_mod.")
_SHOWN = 3  # names listed per kind of mismatch


def strip_wrapper_prefix(state: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Drop a ``module.`` / ``_orig_mod.`` prefix carried by every key (repeatedly: DDP around compile)."""
    state = dict(state)
    changed = True
    while changed and state:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in state):
                logger.info("%s: weights saved from a wrapped model (every key starts with %r, as DataParallel, "
                            "DDP or torch.compile write them); loading them without the prefix", where, prefix)
                state = {k[len(prefix):]: v for k, v in state.items()}
                changed = True
    return state


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f", ... ({len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else "")


def load_weights(model: nn.Module, state: Any, where: str, expected: str = "weights of the same model and options"
                 ) -> None:
    """``model.load_state_dict(state)`` (strict) with the prefix handling and the short errors of the module doc.

    ``where`` names the file (``"checkpoint '/runs/x/last.pt'"``); ``expected`` says what would fit.
    """
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(f"weights are a {type(state).__name__}, {where}, expected a state dict (names -> "
                              "tensors)")
    state = strip_wrapper_prefix(state, where)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing ({_names(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected ({_names(unexpected)})")
        raise CheckpointError(f"weights do not fit {type(model).__name__}: {'; '.join(parts)} of {len(own)} keys, "
                              f"{where}, expected {expected}")
    for name, tensor in state.items():
        if not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"weight {name} is a {type(tensor).__name__}, {where}, expected a tensor")
        check_tensor(name, tensor, own[name], where, expected)
    model.load_state_dict(state)


def _kind(dtype: torch.dtype) -> str:
    if dtype == torch.bool:
        return "boolean"
    if dtype.is_complex:
        return "complex"
    return "floating-point" if dtype.is_floating_point else "integer"


# buffers that are never negative: a negative running variance is NaN after the square root of batch norm
_NON_NEGATIVE = {"running_var": "a batch-norm running variance", "num_batches_tracked": "a batch count"}
# what torch's optimizers keep for each parameter that has state (a missing one fails at the first step), and the
# entries that are never negative (a negative second moment is NaN after its square root)
_STATE_KEYS = {"SGD": ("momentum_buffer",), "Adam": ("step", "exp_avg", "exp_avg_sq"),
               "AdamW": ("step", "exp_avg", "exp_avg_sq")}
_SECOND_MOMENTS = ("exp_avg_sq", "max_exp_avg_sq")


def check_tensor(name: str, tensor: torch.Tensor, target: torch.Tensor, where: str,
                 expected: str = "weights of the same model and options") -> None:
    """Refuse a checkpoint tensor that ``target.copy_(tensor)`` would not load as the same values: another shape,
    no values (``meta`` device), not a dense tensor (sparse, quantized, nested), a dtype of another kind (complex
    values lose their imaginary part, integers or booleans become weights), NaN or infinite values, a negative
    batch-norm running variance or batch count (NaN after the square root), or values beyond the model's dtype (a
    float64 1e300 is inf in float32, an int64 beyond int32). Raises :class:`CheckpointError` naming ``name``."""
    if tensor.shape != target.shape:
        raise CheckpointError(f"weight {name} has shape {tuple(tensor.shape)} in the checkpoint but "
                              f"{tuple(target.shape)} in the model, {where}, expected {expected}")
    if tensor.is_meta or tensor.device.type == "meta":
        raise CheckpointError(f"weight {name} holds no values (a tensor on the meta device), {where}, expected "
                              "tensors with values as torch.save writes them from a model on CPU or GPU")
    if tensor.layout != torch.strided or tensor.is_quantized or getattr(tensor, "is_nested", False):
        raise CheckpointError(f"weight {name} is not a dense tensor ({tensor.layout}"
                              f"{', quantized' if tensor.is_quantized else ''}), {where}, expected dense tensors")
    got, want = _kind(tensor.dtype), _kind(target.dtype)
    dt = str(tensor.dtype).removeprefix("torch.")
    if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all()):
        raise CheckpointError(f"weight {name} holds NaN or infinite values, {where}, expected finite weights (a "
                              "diverged or damaged checkpoint)")
    if got != want:
        raise CheckpointError(f"weight {name} has dtype {dt} ({got}) in the checkpoint but "
                              f"{str(target.dtype).removeprefix('torch.')} ({want}) in the model, {where}, expected "
                              f"{want} values")
    leaf = name.rsplit(".", 1)[-1]
    if leaf in _NON_NEGATIVE and tensor.numel() and bool((tensor < 0).any()):
        raise CheckpointError(f"weight {name} holds negative values (min {tensor.min().item():.4g}), {where}, "
                              f"expected {_NON_NEGATIVE[leaf]} >= 0 (a damaged or edited checkpoint)")
    if tensor.dtype != target.dtype and tensor.numel():
        converted = tensor.detach().to(target.dtype)
        if want == "floating-point":
            lost = bool((torch.isfinite(tensor) & ~torch.isfinite(converted)).any())
        else:
            lost = not bool(torch.equal(converted.to(tensor.dtype), tensor.detach()))
        if lost:
            raise CheckpointError(f"weight {name} has {dt} values beyond the range of the model's "
                                  f"{str(target.dtype).removeprefix('torch.')}, {where}, expected values that fit "
                                  f"{str(target.dtype).removeprefix('torch.')}")


@contextlib.contextmanager
def quiet_warnings(where: str) -> Iterator[None]:
    """Record the warnings raised inside (PyTorch's "Detected pickle protocol 4 ..." of a foreign file, ...) and
    log them at debug level instead of printing them, so a failed load prints one error line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            for w in caught:
                logger.debug("%s: %s: %s", where, w.category.__name__, str(w.message).splitlines()[0][:300]
                             if str(w.message) else "")


_CODE_PATTERNS = (  # how PyTorch's weights-only unpickler words "this file refers to code", across versions
    r"unsupported GLOBAL (\S+?) whose module",          # 2.5+: a blocked module (os, posix, subprocess, ...)
    r"GLOBAL (\S+?) was not an allowed global",          # 2.4+
    r"Unsupported global: GLOBAL (\S+)",                 # older wording
    r"Unsupported class (\S+)",                          # 1.13 - 2.3
    r"Trying to call reduce for unrecognized function (.+?)(?: which belongs to|$)",
    r"Can only create new object for nn.Parameter or classes allowlisted via `add_safe_globals` but got (.+?)$",
    r"Can only build Tensor, Parameter, OrderedDict or types allowlisted via `add_safe_globals`, but got (.+?)$",
    r"GLOBAL (\S+)",                                     # any other wording naming a GLOBAL
)
_UNSAFE_ADVICE = re.compile(r"weights_only|add_safe_globals|safe_globals|trusted source|arbitrary code|"
                            r"pytorch\.org/docs|file an issue", re.IGNORECASE)


def load_failure(e: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in one line. PyTorch's own text suggests
    ``weights_only=False``, which would run the file's code: a file that refers to code is named as refused, and
    no sentence of PyTorch's advice (``weights_only``, ``add_safe_globals``) is ever repeated."""
    text = str(e)
    for pattern in _CODE_PATTERNS:
        code = re.search(pattern, text, re.MULTILINE)
        if code:
            name = code.group(1).strip().rstrip(".")[:120]
            return (f"it refers to Python code ({name}), refused because loading it could run code; a checkpoint "
                    "holds tensors and plain containers only")
    if "must be imported to load" in text:
        return "it holds tensor types hwnas does not load (nested or distributed tensors)"
    unpickler = re.search(r"WeightsUnpickler error:\s*(.+?)\s*(?:\n\n|$)", text, re.DOTALL)
    if unpickler and not _UNSAFE_ADVICE.search(unpickler.group(1)):
        return f"not a PyTorch checkpoint or truncated ({unpickler.group(1).strip().splitlines()[0][:120]})"
    # the first line that is not PyTorch's advice ("Weights only load failed. ... weights_only ... False ...")
    lines = [line.strip() for line in re.split(r"\n|(?<=\.) (?=[A-Z])", text) if line.strip()]
    kept = [line for line in lines if not _UNSAFE_ADVICE.search(line) and not line.startswith("Weights only load")]
    first = kept[0][:200] if kept else ""
    if not first and _UNSAFE_ADVICE.search(text):
        return "not a PyTorch checkpoint written by torch.save, or truncated (refused by the weights-only loader)"
    return f"{type(e).__name__}: {first}" if first else f"{type(e).__name__}: truncated or not a PyTorch checkpoint"


_SCHEDULED = frozenset({"lr", "initial_lr"})  # set by the run's schedule at every epoch, not by the checkpoint


def _plain(value: Any) -> Any:
    return tuple(_plain(v) for v in value) if isinstance(value, (list, tuple)) else value


def _check_state_entry(name: str, value: Any, param: torch.Tensor, what: str, refuse: Any) -> None:
    """One saved optimizer entry of a parameter (``what`` names it): ``step`` a whole number 0..:data:`INT_MAX`
    (a number or a one-element tensor); ``momentum_buffer`` None or a buffer; any other entry a buffer, i.e. a dense
    floating-point tensor of the parameter's shape, finite, within the parameter's dtype, second moments >= 0."""
    if name == "step":
        number = value
        if isinstance(value, torch.Tensor):
            if (value.numel() != 1 or value.is_meta or value.layout != torch.strided or value.is_complex()
                    or value.dtype == torch.bool):
                raise refuse(f"{what} is a {str(value.dtype).removeprefix('torch.')} tensor of shape "
                             f"{tuple(value.shape)}, expected one step count")
            number = value.item()
        if (isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number)
                or not 0 <= number <= INT_MAX or number != int(number)):
            raise refuse(f"{what} is {str(number)[:40]}, expected a step count (a whole number from 0 to {INT_MAX})")
        return
    if value is None and name == "momentum_buffer":  # torch keeps None for a parameter that had no gradient yet
        return
    if not isinstance(value, torch.Tensor):
        raise refuse(f"{what} is a {type(value).__name__}, expected a tensor of the parameter's shape")
    if value.is_meta or value.layout != torch.strided or value.is_quantized:
        raise refuse(f"{what} is not a dense tensor with values ({value.layout}{', meta' if value.is_meta else ''})")
    if value.shape != param.shape:
        raise refuse(f"{what} has shape {tuple(value.shape)}, the parameter {tuple(param.shape)}")
    if not value.is_floating_point():
        raise refuse(f"{what} has dtype {str(value.dtype).removeprefix('torch.')}, expected floating-point values")
    if not bool(torch.isfinite(value).all()):
        raise refuse(f"{what} holds NaN or infinite values")
    if value.dtype != param.dtype and not bool(torch.isfinite(value.to(param.dtype)).all()):
        raise refuse(f"{what} holds values beyond the range of the parameter's "
                     f"{str(param.dtype).removeprefix('torch.')}")
    if name in _SECOND_MOMENTS and bool((value < 0).any()):
        raise refuse(f"{what} holds negative values, expected a second moment >= 0")


def load_optimizer(optimizer: torch.optim.Optimizer, state: Any, where: str) -> None:
    """``optimizer.load_state_dict``, checked first: the saved hyper-parameters of every parameter group must be
    the run's (momentum, weight decay, nesterov, betas...: an edited checkpoint would silently override the
    settings; the lr is the schedule's), and every saved buffer (momentum, Adam moments) must have its parameter's
    shape, a floating-point dtype and finite values within the parameter's dtype, every entry the optimizer keeps
    must be there, step counts are whole numbers >= 0 and Adam's second moments are >= 0 (each of these would fail
    or give NaN updates at the first step). Raises :class:`CheckpointError` naming the field."""
    def refuse(what: str) -> CheckpointError:
        return CheckpointError(f"optimizer state does not fit ({what}), {where}, expected the optimizer state of the "
                               "same model and settings")

    groups, buffers = (state.get("param_groups"), state.get("state")) if isinstance(state, dict) else (None, None)
    if not isinstance(groups, list) or not isinstance(buffers, dict) or len(groups) != len(optimizer.param_groups):
        raise refuse("not the parameter groups and state torch saves")
    params: dict[int, torch.Tensor] = {}
    for i, (theirs, ours) in enumerate(zip(groups, optimizer.param_groups)):
        if not isinstance(theirs, dict) or not isinstance(theirs.get("params"), list):
            raise refuse(f"param_groups[{i}] is not a parameter group")
        for key, value in ours.items():
            if key == "params" or key in _SCHEDULED:
                continue
            if key not in theirs or _plain(theirs[key]) != _plain(value) or type(theirs[key]) is not type(value):
                shown = theirs.get(key, "absent")
                raise refuse(f"param_groups[{i}].{key} is {str(shown)[:60]}, the run's is {value}")
        params.update({pid: p for pid, p in zip(theirs["params"], ours["params"]) if isinstance(pid, int)})
    required = set(_STATE_KEYS.get(type(optimizer).__name__, ()))
    if type(optimizer).__name__ == "SGD" and not any(g.get("momentum") for g in optimizer.param_groups):
        required = set()  # plain SGD keeps no state
    if any(g.get("amsgrad") for g in optimizer.param_groups):
        required.add("max_exp_avg_sq")
    for pid, entries in buffers.items():
        if pid not in params or not isinstance(entries, dict):
            raise refuse(f"state of unknown parameter {str(pid)[:40]}")
        missing = sorted(required - set(entries)) if entries else []
        if missing:
            raise refuse(f"parameter {pid} lacks {', '.join(missing)}")
        for name, value in entries.items():
            _check_state_entry(str(name), value, params[pid], f"{str(name)[:40]} of parameter {pid}", refuse)
    try:
        optimizer.load_state_dict(state)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise refuse(str(e).splitlines()[0][:200]) from None


__all__ = ["check_tensor", "load_failure", "load_optimizer", "load_weights", "quiet_warnings", "strip_wrapper_prefix"]
