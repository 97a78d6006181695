"""Search checkpoints: written atomically, loaded with ``weights_only=True``, and checked before a resume (the
layout, every field's type, and that settings, latency table and data are those the search started with)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hwnas import _cli
from hwnas._io import save_torch_atomic
from hwnas._resume import changed_fields, content_hash, refuse_resume
from hwnas._weights import load_failure
from hwnas.errors import CheckpointError
from hwnas.search._state import SearchState

if TYPE_CHECKING:
    from hwnas.search.config import SearchConfig

CHECKPOINT_NAME = "last.pt"


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write with a temp file + fsync + rename (mode 0644 under umask 022), so a kill never leaves a half-written
    checkpoint; temp files of a killed writer are removed when the next run takes the folder's lock."""
    return save_torch_atomic(path, payload)


def has_checkpoint(path: Path) -> bool:
    """Whether a search checkpoint file is at ``path`` (a link to one counts). Anything else there, a folder, a
    FIFO, a device, a dangling or looping link, or a file where the ``checkpoints`` folder should be, is refused
    with :class:`CheckpointError`: taken for "no checkpoint yet", the search would start again from epoch 1 and
    replace it."""
    folder = path.parent
    if os.path.lexists(folder) and not folder.is_dir():
        raise CheckpointError(f"not a folder, {folder}, expected the search's checkpoints folder (or nothing there)")
    if path.is_file():
        return True
    if os.path.lexists(path):
        raise CheckpointError(f"not a regular file, checkpoint {path}, expected the checkpoint hwnas search writes "
                              "(or nothing there, for a search stopped before its first checkpoint)")
    return False


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a search checkpoint (``weights_only=True``) and check its layout (:func:`checked_layout`); errors name
    the file. Whether it continues a given search: :func:`check_resumable`."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint does not exist, {path}, expected a search checkpoint (run without "
                              "--resume to start one)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 (torch raises many types for corrupt/foreign files)
        raise CheckpointError(f"cannot be read ({load_failure(e)}), checkpoint '{path}', expected a search "
                              "checkpoint written by hwnas search") from None
    return checked_layout(payload, f"checkpoint '{path}'")


def checked_layout(payload: Any, where: str) -> dict[str, Any]:
    """``payload`` if it has a search checkpoint's keys, with mappings where hwnas writes them; raises
    :class:`CheckpointError` naming ``where`` otherwise."""
    required = {"config", "model", "weight_opt", "alpha_opt", "state", "rng"}
    if not isinstance(payload, dict) or not required <= set(payload):
        missing = sorted(required - set(payload)) if isinstance(payload, dict) else sorted(required)
        raise CheckpointError(f"not a search checkpoint (lacks {', '.join(missing)}), {where}, expected "
                              f"the keys {', '.join(sorted(required))}")
    for key in ("config", "model", "weight_opt", "alpha_opt", "state"):
        if not isinstance(payload[key], dict):
            raise CheckpointError(f"{key} is a {type(payload[key]).__name__}, {where}, expected the "
                                  "mapping hwnas search writes")
    return payload


RESULT_NEUTRAL = frozenset({"checkpoint_every"})  # may change between sessions without changing the result


def config_mismatch(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Fields that change the result and differ between a checkpoint's config and the current one, each as
    ``name old -> new``."""
    # a field added after the checkpoint was written reads as the behaviour before it; any other missing field
    # is a difference ("seed (absent) -> 0"), not a default
    saved = {**{k: v for k, v in ADDED_LATER.items() if k not in saved and k in current}, **saved}
    return changed_fields(saved, current, ignore=RESULT_NEUTRAL)


# SearchConfig fields added after the first checkpoints, with the behaviour the search had before each: no
# warm-up, hwnas's disjoint validation split (the official one became the default later), no weight sharing,
# the genotype from the alphas
ADDED_LATER: dict[str, Any] = {"warmup_epochs": 0, "val_split": "disjoint", "share_weights": "none",
                               "derive": "alpha", "derive_samples": 200}


_UNRECORDED = object()  # checkpoints written before the table identity was recorded


def _table_text(identity: dict[str, Any] | None) -> str:
    return "none" if identity is None else f"{identity['name']} ({identity['hash'][:15]}...)"


def table_identity(table: Any) -> dict[str, Any] | None:
    """Name and content hash of a latency table (None without one): a resume must use the same table."""
    if table is None:
        return None
    from hwnas.latency.schema import to_dict

    return {"name": table.name, "hash": content_hash(to_dict(table.data))}


def _data_text(identity: dict[str, Any] | None) -> str:
    return "none recorded" if not identity else f"{identity.get('dataset')} ({str(identity.get('images'))[:15]}...)"


def check_resumable(checkpoint_path: Path, config: SearchConfig, table: Any = None,
                    data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The checkpoint of ``checkpoint_path`` if it continues a search with ``config``, ``table`` and the data of
    identity ``data`` (:func:`hwnas.search._data.data_identity`; None: not compared); raises
    :class:`CheckpointError` (unreadable, or settings, table or data differ, each named ``old -> new``).

    Called by :meth:`Searcher.load`, and by the command line before it writes anything into the folder."""
    return _check_fields(load_checkpoint(checkpoint_path), f"checkpoint '{checkpoint_path}'", config, table, data)


def _plain(value: Any) -> bool:
    """A value a config can hold: None, bool, int, float, str, and lists/tuples/str-keyed mappings of them."""
    if value is None or type(value) in (bool, int, float, str):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def check_checkpoint(ckpt: dict[str, Any], where: str, config: SearchConfig, table: Any = None,
                     data: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`check_resumable` of a checkpoint already loaded (``where`` names it in errors): returns ``ckpt``."""
    return _check_fields(checked_layout(ckpt, where), where, config, table, data)


def _check_fields(ckpt: dict[str, Any], where: str, config: SearchConfig, table: Any,
                  data: dict[str, Any] | None) -> dict[str, Any]:
    """The checks of :func:`check_checkpoint` after the layout's."""
    for key, value in ckpt["config"].items():
        if not (isinstance(key, str) and _plain(value)):
            raise CheckpointError(f"bad value {_cli.file_value(value)}, {where} config.{_cli.echo(key)}, expected the "
                                  "settings hwnas search writes (names with numbers, strings or lists of them)")
    diff = config_mismatch(ckpt["config"], config.to_dict())
    kinds = ["settings"] if diff else []
    saved_table, identity = ckpt.get("latency_table", _UNRECORDED), table_identity(table)
    if saved_table is not _UNRECORDED and saved_table is not None and not (
            isinstance(saved_table, dict) and isinstance(saved_table.get("name"), str)
            and isinstance(saved_table.get("hash"), str)):
        raise CheckpointError(f"bad value {_cli.file_value(saved_table)}, {where} latency_table, expected null or the "
                              "name and hash of the table the search ran with")
    if saved_table is not _UNRECORDED and saved_table != identity:
        diff.append(f"latency table {_table_text(saved_table)} -> {_table_text(identity)}")
        kinds.append("latency table")
    SearchState.from_checkpoint(ckpt["state"], config.epochs, where)  # edited progress refused before any write
    _check_states(ckpt, where)
    rng = ckpt["rng"]
    if not (isinstance(rng, list) and rng and all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8
                                                  and t.dim() == 1 and t.numel() > 0 for t in rng)):
        raise CheckpointError(f"bad random-number state, {where} rng, expected one torch.ByteTensor per process")
    world = ckpt.get("world_size", 1)
    if type(world) is not int or not 1 <= world <= _cli.INT_MAX:
        raise CheckpointError(f"bad value {_cli.file_value(world)}, {where} world_size, expected the number of "
                              "processes that wrote it (a whole number >= 1)")
    if len(rng) != world:
        raise CheckpointError(f"{len(rng)} random-number states for {world} process(es), {where} rng, expected one "
                              "per process")
    grads = ckpt.get("grads_kept", [])
    if not (isinstance(grads, list) and all(isinstance(n, str) for n in grads)):
        raise CheckpointError(f"bad value {_cli.file_value(grads)}, {where} grads_kept, expected a list of parameter "
                              "names")
    saved_data = ckpt.get("data")  # checkpoints written before it was recorded lack it
    if saved_data is not None and not (isinstance(saved_data, dict) and all(isinstance(k, str) for k in saved_data)):
        raise CheckpointError(f"bad value {_cli.file_value(saved_data)}, {where} data, expected null or the identity "
                              "of the data the search ran on (a mapping)")
    if saved_data is not None and data is not None and saved_data != data:
        diff.append(f"data {_data_text(saved_data)} -> {_data_text(data)}")
        kinds.append("data")
    if diff:
        what = ", ".join(kinds[:-1]) + " and " + kinds[-1] if len(kinds) > 1 else kinds[0]
        verb = "differs" if kinds == ["latency table"] else "differ"
        raise refuse_resume(diff, where, "the settings, latency table and data the search started with",
                            f"{what} {verb}")
    return ckpt


def _check_states(ckpt: dict[str, Any], where: str) -> None:
    """The weights and optimizer states have the form torch writes (names -> tensors; parameter groups and
    per-parameter state), so junk is refused with the other checks, before the command line prints or writes
    anything. Whether they fit the supernet (names, shapes, values) is checked when the search loads them."""
    bad = next((k for k, v in ckpt["model"].items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)),
               _UNRECORDED)
    if bad is not _UNRECORDED or not ckpt["model"]:
        what = "no weights" if bad is _UNRECORDED else \
            f"weight {_cli.echo(bad)} is a {type(ckpt['model'][bad]).__name__}"
        raise CheckpointError(f"{what}, {where} model, expected the supernet's state dict (names -> tensors)")
    for key in ("weight_opt", "alpha_opt"):
        groups, state = ckpt[key].get("param_groups"), ckpt[key].get("state")
        if not (isinstance(groups, list) and groups and isinstance(state, dict)
                and all(isinstance(g, dict) and isinstance(g.get("params"), list) for g in groups)):
            raise CheckpointError(f"not an optimizer state, {where} {key}, expected the parameter groups and state "
                                  "torch saves")
