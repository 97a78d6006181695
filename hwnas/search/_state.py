"""The progress of a search as a checkpoint holds it (:class:`SearchState`), and its checks on load: an edited
or damaged checkpoint is refused (:class:`hwnas.errors.CheckpointError` naming the field), never run from."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from hwnas import _cli
from hwnas._io import finite_number
from hwnas.errors import CheckpointError

SUM_KEYS = ("train_loss", "train_ce", "train_triplet", "train_acc", "val_loss", "val_acc_train_mode", "latency_ms",
            "latency_penalty", "time_s")
HISTORY_KEYS = frozenset({"epoch", "steps", "lr", "alpha_lr", "time_s", "alpha_entropy", "alpha_entropy_per_layer",
                          "alpha_entropy_fraction", "alpha_margin", "alphas", "genotype", *SUM_KEYS})


@dataclass
class SearchState:
    """Progress of a search; ``sums`` accumulate the current epoch's metrics over ``count`` steps."""

    epoch: int = 0
    step: int = 0
    global_step: int = 0
    val_cycle: int = 0
    val_pos: int = 0
    count: int = 0
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SUM_KEYS, 0.0))
    history: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_checkpoint(cls, raw: Any, epochs: int, where: str) -> SearchState:
        """The progress saved in a checkpoint, checked: whole counters in range (epoch <= ``epochs``, ``count`` =
        ``step`` <= ``global_step``), finite sums of every metric, one finite history record per finished epoch.
        Raises :class:`CheckpointError` naming the field (an edited or damaged checkpoint is never run from)."""
        names = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(raw, dict) or set(raw) != set(names):
            got = sorted(map(str, raw)) if isinstance(raw, dict) else type(raw).__name__
            raise CheckpointError(f"search progress is {_cli.file_value(got)}, {where} state, expected the fields "
                                  f"{', '.join(names)}")

        def bad(field_name: str, value: Any, expected: str) -> CheckpointError:
            return CheckpointError(f"bad value {_cli.file_value(value)}, {where} state.{field_name}, expected "
                                   f"{expected}")

        for name in ("epoch", "step", "global_step", "val_cycle", "val_pos", "count"):
            if type(raw[name]) is not int or raw[name] < 0:
                raise bad(name, raw[name], "a whole number >= 0")
        if raw["epoch"] > epochs:
            raise bad("epoch", raw["epoch"], f"at most the search's {epochs} epochs")
        if raw["count"] != raw["step"] or raw["step"] > raw["global_step"]:
            raise bad("step", raw["step"], f"count = step <= global_step ({raw['count']}, {raw['global_step']})")
        for name in ("val_cycle", "val_pos"):  # each alpha step moves on by one batch, at most one pass
            if raw[name] > raw["global_step"]:
                raise bad(name, raw[name], f"at most the steps taken ({raw['global_step']}): one validation batch "
                                           "per alpha step")
        sums = raw["sums"]
        if not isinstance(sums, dict) or set(sums) != set(SUM_KEYS):
            raise bad("sums", sums, f"the sums of {', '.join(SUM_KEYS)}")
        for key, value in sums.items():  # latency_ms sums NaN in a search without a latency table
            if not (finite_number(value) or (key == "latency_ms" and type(value) is float and math.isnan(value))):
                raise bad(f"sums.{key}", value, "a finite number")
            # every metric is >= 0 (losses, latency and its penalty at a weight >= 0, time), accuracies <= 1
            if math.isfinite(value) and ((raw["count"] == 0 and value != 0) or value < 0
                                         or (key.endswith("acc") or "_acc_" in key) and value > raw["count"]):
                raise bad(f"sums.{key}", value, f"the sum over the epoch's {raw['count']} step(s) so far "
                                                "(0 before the first; every metric >= 0, accuracies at most 1 per step)")
        history = raw["history"]
        if not isinstance(history, list) or len(history) != raw["epoch"]:
            raise bad("history", f"{type(history).__name__} of {len(history) if isinstance(history, list) else '?'}",
                      f"one record per finished epoch ({raw['epoch']})")
        for i, record in enumerate(history):
            if not isinstance(record, dict) or record.get("epoch") != i + 1:
                raise bad(f"history[{i}]", record, f"the record of epoch {i + 1}")
            missing = sorted(HISTORY_KEYS - set(record))
            if missing:
                raise bad(f"history[{i}]", f"a record without {', '.join(missing)}", "every field of an epoch record")
            for key, value in record.items():
                if key == "genotype":
                    ok = isinstance(value, str)
                elif key in ("alphas", "alpha_entropy_per_layer"):
                    rows = value if isinstance(value, list) else [None]
                    flat = [x for row in rows for x in (row if isinstance(row, list) else [row])]
                    ok = isinstance(value, list) and all(finite_number(x) for x in flat)
                elif key in ("epoch", "steps"):
                    ok = type(value) is int and value >= 0
                else:
                    ok = value is None or (finite_number(value) and (value >= 0 or key == "alpha_margin"))
                if not ok:
                    raise bad(f"history[{i}].{key}", value, "the finite number (or list, or genotype) the search "
                                                            "recorded")
        return cls(**{k: raw[k] for k in names})
