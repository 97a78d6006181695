"""Search settings as frozen dataclasses: the seed's schedule and the short synthetic one.

The seed's defaults (supplementary section 1): SGD (momentum 0.9, weight decay 3e-4, lr 0.025 cosine to
1e-4) for the weights; Adam (lr 3e-4, betas (0.5, 0.999), weight decay 1e-3, x0.1 at epochs 80 and 160)
for alpha; 240 epochs; batches of 64 = 16 identities x 4 images; 4 validation images per identity (split and
batched as the paper's public code does: ``val_split='official'``); softmax + triplet (margin 0.3); top-2;
alpha initialised to 1e-3.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from hwnas._cli import SEED_MAX
from hwnas._limits import (FLOAT32_TINY, GAMMA_RANGE, LATENCY_WEIGHT_MAX, LR_RANGE, MARGIN_MAX, MAX_INPUT_SIDE,
                           SCHEDULED_LR_MIN, WEIGHT_DECAY_MAX)
from hwnas.data.split import VAL_SPLITS
from hwnas.errors import ConfigError, UsageError
from hwnas.space.candidates import SPACES, candidates


SHARE_MODES = ("none", "io")  # search.share_weights: the paper's supernet, or candidates sharing their 1x1 convs
DERIVE_MODES = ("alpha", "score")  # search.derive: argmax alpha (the paper), or the supernet's score
DEFAULT_DERIVE_SAMPLES = 200  # search.derive_samples: random genotypes scored with derive score


@dataclass(frozen=True)
class SearchConfig:
    """Everything that decides a search's result (the output folder and device are not part of it)."""

    space: str = "cdnet"
    topk: int = 2
    width_mult: float = 1.0
    image_size: tuple[int, int] = (256, 128)  # (height, width) in pixels
    epochs: int = 240
    ids_per_batch: int = 16  # P
    images_per_id: int = 4  # K; batch = P x K
    val_per_id: int = 4
    # 'official': the paper's code (exactly val_per_id images per identity, shared with the train split when an
    # identity is small; training augmentation; each alpha step's batch from a freshly shuffled P x K pass).
    # 'disjoint': min(val_per_id, n - 1) held-out images per identity, no augmentation, passes in order.
    val_split: str = "official"
    lr: float = 0.025
    lr_min: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 3e-4
    alpha_lr: float = 3e-4
    alpha_betas: tuple[float, float] = (0.5, 0.999)
    alpha_weight_decay: float = 1e-3
    alpha_milestones: tuple[int, ...] = (80, 160)
    alpha_gamma: float = 0.1
    triplet_margin: float = 0.3
    alpha_init: float = 1e-3
    # Epochs at the start that train only the weights (DARTS-style warm-up; 0 in the paper). Each warm-up step
    # runs k candidates per layer drawn uniformly at random, so every candidate is trained before alpha judges it
    # (with all alphas equal, top-k would train only the tie-break's first k).
    warmup_epochs: int = 0
    latency_weight: float = 0.0  # 0 = the paper's search
    latency_target_ms: float | None = None
    seed: int = 0
    # 'none': every candidate has its own weights (the paper). 'io': the candidates of a layer share their 1x1
    # convolutions (hwnas.search.supernet.share_io_), so the supernet trains on mixed paths.
    share_weights: str = "none"
    # How the final genotype is chosen. 'alpha': argmax alpha per layer (the paper). 'score': the best by the
    # supernet's fixed-path validation score among the alpha genotype and derive_samples random genotypes (in a
    # hardware-aware search, only those no slower than the alpha genotype): hwnas.search.scoring.select_by_score.
    derive: str = "alpha"
    derive_samples: int = DEFAULT_DERIVE_SAMPLES
    checkpoint_every: int = 100  # steps between mid-epoch checkpoints (0: only at epoch ends)

    def __post_init__(self) -> None:
        def bad(name: str, want: str) -> UsageError:
            return UsageError(f"bad value {getattr(self, name)!r}, SearchConfig.{name}, expected {want}")

        if self.space not in SPACES:
            raise bad("space", f"one of {', '.join(SPACES)}")
        n = len(candidates(self.space))
        if not 1 <= self.topk <= min(4, n):
            raise bad("topk", "an integer in 1..4")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise bad("warmup_epochs", f"an integer in 0..epochs-1 = 0..{self.epochs - 1} (alpha needs >= 1 epoch)")
        for name in ("epochs", "ids_per_batch", "images_per_id", "val_per_id"):
            if int(getattr(self, name)) < 1:
                raise bad(name, "a positive integer")
        if self.share_weights not in SHARE_MODES:
            raise bad("share_weights", "none (the paper's supernet) or io (candidates share their 1x1 convolutions)")
        if self.derive not in DERIVE_MODES:
            raise bad("derive", "alpha (argmax alpha, the paper) or score (the best genotype by the supernet's score)")
        if not 1 <= self.derive_samples <= 100_000:
            raise bad("derive_samples", "an integer in 1..100000 (random genotypes scored by the supernet)")
        if self.derive != "score" and self.derive_samples != DEFAULT_DERIVE_SAMPLES:  # it would change only the settings
            raise bad("derive_samples", f"the default {DEFAULT_DERIVE_SAMPLES} unless derive is score (the random "
                      "genotypes scored beside the argmax-alpha one)")
        if self.val_split not in VAL_SPLITS:
            raise bad("val_split", f"one of {', '.join(VAL_SPLITS)}")
        if self.ids_per_batch < 2:
            raise bad("ids_per_batch", "at least 2 identities per batch (the triplet loss needs negatives)")
        if len(self.image_size) != 2 or min(self.image_size) < 32 or max(self.image_size) > MAX_INPUT_SIDE:
            raise bad("image_size", f"(height, width), both >= 32 and at most {MAX_INPUT_SIDE} pixels")
        for name in ("width_mult", "lr", "alpha_lr"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise bad(name, "a finite number > 0")
        if not (math.isfinite(self.latency_weight) and self.latency_weight >= 0):
            raise bad("latency_weight", "a finite number >= 0")
        if self.latency_target_ms is not None and not (math.isfinite(self.latency_target_ms)
                                                       and self.latency_target_ms > 0):
            raise bad("latency_target_ms", "a finite number of milliseconds > 0, or None")
        if self.checkpoint_every < 0:
            raise bad("checkpoint_every", "a number of steps >= 0")
        for name in ("lr_min", "weight_decay", "alpha_weight_decay", "triplet_margin"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise bad(name, "a finite number >= 0")
        if not (math.isfinite(self.alpha_init) and math.isfinite(self.alpha_gamma) and self.alpha_gamma > 0):
            raise bad("alpha_gamma" if math.isfinite(self.alpha_init) else "alpha_init", "a finite number (> 0 for "
                      "alpha_gamma)")
        if not 0 <= self.momentum < 1:
            raise bad("momentum", "a number in [0, 1) (SGD diverges at 1 and above)")
        if len(self.alpha_betas) != 2 or not all(0 <= b < 1 for b in self.alpha_betas):
            raise bad("alpha_betas", "two numbers in [0, 1) (Adam's betas)")
        if not 0 <= self.seed <= SEED_MAX:  # the one seed bound of flags and config files
            raise bad("seed", f"an integer between 0 and {SEED_MAX}")
        m = list(self.alpha_milestones)
        if m != sorted(set(m)) or any(e < 1 for e in m):
            raise bad("alpha_milestones", "increasing 0-based epochs >= 1")
        self._check_float32_ranges(bad)

    def _check_float32_ranges(self, bad: Any) -> None:
        """The float settings stay inside ranges float32 holds (hwnas._limits; as TrainConfig): a 1e308 lr failed
        deep inside the search, a 1e-320 one was a silent no-op."""
        for name in ("lr", "alpha_lr"):
            if not LR_RANGE[0] <= getattr(self, name) <= LR_RANGE[1]:
                raise bad(name, f"a number between {LR_RANGE[0]:g} and {LR_RANGE[1]:g}")
        if not GAMMA_RANGE[0] <= self.alpha_gamma <= GAMMA_RANGE[1]:
            raise bad("alpha_gamma", f"a number between {GAMMA_RANGE[0]:g} and {GAMMA_RANGE[1]:g}")
        lowest = math.log10(self.alpha_lr) + len(self.alpha_milestones) * math.log10(self.alpha_gamma)
        if not math.log10(SCHEDULED_LR_MIN) <= lowest <= math.log10(LR_RANGE[1]):
            raise bad("alpha_gamma", f"a schedule whose alpha lr (alpha_lr x alpha_gamma^milestones, about "
                                     f"1e{lowest:+.0f}) stays between {SCHEDULED_LR_MIN:g} and {LR_RANGE[1]:g}")
        for name, top in (("lr_min", LR_RANGE[1]), ("weight_decay", WEIGHT_DECAY_MAX),
                          ("alpha_weight_decay", WEIGHT_DECAY_MAX), ("triplet_margin", MARGIN_MAX)):
            value = getattr(self, name)
            if 0 < value < FLOAT32_TINY or value > top:
                raise bad(name, f"0 or a number between {FLOAT32_TINY:g} and {top:g} (so that float32 holds it)")
        for name, value in (("momentum", self.momentum), *(("alpha_betas", b) for b in self.alpha_betas)):
            if 0 < value < FLOAT32_TINY:
                raise bad(name, f"0 or a number from {FLOAT32_TINY:g} to below 1 (so that float32 holds it)")
        if abs(self.alpha_init) > 1e6:
            raise bad("alpha_init", "a number between -1e6 and 1e6")
        if self.latency_weight > LATENCY_WEIGHT_MAX:
            raise bad("latency_weight", f"a number of loss units per ms between 0 and {LATENCY_WEIGHT_MAX:g}")
        if self.latency_target_ms is not None and self.latency_target_ms > 1e9:
            raise bad("latency_target_ms", "at most 1e9 ms")

    def check_milestones_apply(self) -> None:
        """Refuse alpha lr milestones that never apply (at or beyond ``epochs``; epochs are 0-based). Not part of
        construction, so library code may shorten the paper's schedule (``epochs=2`` keeps milestones 80, 160);
        the command line, where a user wrote the schedule, calls it. Raises :class:`UsageError`."""
        late = [e for e in self.alpha_milestones if e >= self.epochs]
        if late:
            raise UsageError(f"bad value {list(self.alpha_milestones)!r}, search.alpha_milestones, expected 0-based "
                             f"epochs in 1..epochs-1 = 1..{self.epochs - 1} ({late} would never apply)")

    @property
    def batch_size(self) -> int:
        return self.ids_per_batch * self.images_per_id

    def replace(self, **changes: Any) -> "SearchConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown field(s) {', '.join(unknown)}, search config, expected fields of SearchConfig: "
                              f"{', '.join(sorted(names))}")
        tuples = {"image_size", "alpha_betas", "alpha_milestones"}
        return cls(**{k: tuple(v) if k in tuples else v for k, v in data.items()})


@dataclass(frozen=True)
class SyntheticData:
    """The synthetic Market-1501-format dataset the short schedule searches on (see hwnas.data.synthetic)."""

    num_ids: int = 32
    images_per_id: int = 12  # 8 train + 4 validation per identity
    num_cameras: int = 4
    image_size: tuple[int, int] = (64, 32)  # (height, width) of the written images
    seed: int = 0


def paper_config(**changes: Any) -> SearchConfig:
    """The seed's schedule (240 epochs, 256x128, batch 64)."""
    return SearchConfig().replace(**changes)


def short_config(**changes: Any) -> SearchConfig:
    """A few-minute schedule for a 2-core CPU on :class:`SyntheticData` (the main job without a dataset).

    Same optimisers and losses as the paper; smaller: width 0.5, 64x32 input, batch 32 = 8 x 4, 32 epochs of one
    P x K pass each (7-8 steps). The first 8 epochs train only the weights, on k random candidates per layer (a
    DARTS-style warm-up, so every candidate is trained before alpha judges it). With ~200x fewer alpha steps than
    the paper (~200 vs ~40,000), alpha's learning rate is 1e-1 instead of 3e-4, x0.1 for the last 4 epochs.
    Chosen from measured runs: docs/search.md, "The main job".
    """
    base = SearchConfig(width_mult=0.5, image_size=(64, 32), epochs=32, warmup_epochs=8, ids_per_batch=8,
                        images_per_id=4, alpha_lr=1e-1, alpha_milestones=(28,), checkpoint_every=20)
    return base.replace(**changes)


def with_epochs(config: SearchConfig, epochs: int) -> SearchConfig:
    """Change the number of epochs, keeping alpha's lr milestones and the warm-up at the same fractions."""
    if epochs < 1:
        raise UsageError(f"bad value {epochs}, epochs, expected an integer >= 1")
    fractions = [m / config.epochs for m in config.alpha_milestones]
    milestones = tuple(sorted(m for m in {max(1, round(f * epochs)) for f in fractions} if m < epochs))
    warmup = min(round(config.warmup_epochs * epochs / config.epochs), epochs - 1)
    return config.replace(epochs=epochs, alpha_milestones=milestones, warmup_epochs=warmup)
