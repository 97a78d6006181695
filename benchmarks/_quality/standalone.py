"""Stand-alone training of one genotype on the proxy with :class:`hwnas.training.Trainer` (the one trainer).

Every architecture of the benchmark gets the same short recipe (:class:`Recipe`); a run lives in its own
folder, under a folder named after the recipe (:meth:`Recipe.tag`, so a changed recipe never reuses another
recipe's results), and is skipped when its ``standalone.json`` exists, or continued from its ``last.pt`` (whole
epochs) when it was interrupted, so the benchmark resumes where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

import hwnas
from hwnas._io import finite_number, read_json_cache, read_json_lines, write_json_atomic
from hwnas.envinfo import device_name
from hwnas.space.genotype import Genotype
from hwnas.training import ReIDData, TrainConfig, Trainer, evaluate
from hwnas.training.loop import METRICS

logger = logging.getLogger(__name__)

RESULT_FILE = "standalone.json"


@dataclass(frozen=True)
class Recipe:
    """The one short stand-alone recipe: SGD with a linear warm-up, x0.1 at ``decay_at`` of the epochs, P x K
    batches, the paper's augmentation and softmax + triplet loss (DESIGN 3, shortened). ``width_mult`` and
    ``image_size`` (H, W) match the search's proxy; ``neck`` is the paper's FBLNeck.

    160 epochs (4,960 steps on the 1,024-image proxy). At 12 epochs (the first recipe) every network ended with
    training accuracy 23-67% and its loss still falling, so the proxy ranked how fast a network starts to learn
    (deep ones slowest). 40 epochs cut the seed-to-seed spread from 8.1 to 1.9 mAP points, but the deepest networks
    still lagged (training accuracy 77-91%; Kendall's tau of depth vs mAP -0.62). 80 epochs cut the spread to 0.6
    (max 1.0) with training accuracy 91-95%, deep networks gaining most, but the gap between a depth-11 and a
    depth-7 genotype still shrank from 5.0 to 1.2 points when trained for 160. At 160 epochs every network ends at
    95.5-98.0% training accuracy (benchmarks/results/search_quality.md; the shorter recipes:
    search_quality_recipe80.md, search_quality_recipe40.md, search_quality_recipe12.md)."""

    epochs: int = 160
    lr: float = 0.065
    warmup_epochs: int = 2
    decay_at: float = 0.7
    batch_size: int = 32
    images_per_id: int = 4
    image_size: tuple[int, int] = (64, 32)
    width_mult: float = 0.5
    neck: str = "fblneck"

    def train_config(self, seed: int) -> TrainConfig:
        milestone = max(2, round(self.epochs * self.decay_at))
        return TrainConfig(epochs=self.epochs, lr=self.lr, milestones=(milestone,) if milestone <= self.epochs else (),
                           warmup_epochs=self.warmup_epochs if self.warmup_epochs < self.epochs else 0,
                           batch_size=self.batch_size, num_instances=self.images_per_id,
                           height=self.image_size[0], width=self.image_size[1], eval_every=0, amp=False,
                           test_batch_size=256, seed=seed)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["image_size"] = list(self.image_size)
        return d

    def tag(self) -> str:
        """A folder name that changes with any field: ``e<epochs>-<8 hex digits of the fields' hash>``."""
        return settings_tag(self.epochs, self.to_dict())


def settings_tag(epochs: int, settings: dict[str, Any]) -> str:
    """``e<epochs>-<8 hex digits of the SHA-256 of settings as sorted JSON>``: a folder name for results that must
    not be reused under other settings (the recipe's trainings, the plan's searches)."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=list).encode()).hexdigest()[:8]
    return f"e{epochs}-{digest}"


def run_dir(root: Path, genotype: Genotype, seed: int, recipe: Recipe) -> Path:
    return root / recipe.tag() / f"{genotype.tostr().replace(':', '_').replace(',', '_')}-seed{seed}"


RESULT_KEYS = ("genotype", "seed", "rank1", "mAP", "mINP", "train_s", "recipe", "folder")


def cached_problem(r: dict[str, Any], genotype: str, seed: int, recipe: Recipe,
                   fractions: tuple[str, ...] = ("rank1", "mAP", "mINP")) -> str | None:
    """Why a cached result of one training (``standalone.json``, ``eval-market.json``) is not that of ``genotype``
    (its string), ``seed`` (a whole number) and ``recipe``, or has a value in ``fractions`` outside [0, 1]; or
    None."""
    if r.get("genotype") != genotype:
        return f"genotype {r.get('genotype')!r}, expected {genotype}"
    if type(r.get("seed")) is not int or r["seed"] != seed:
        return f"seed {r.get('seed')!r}, expected {seed}"
    if r.get("recipe") != recipe.to_dict():
        return "another recipe"
    for key in fractions:
        if not finite_number(r.get(key)) or not 0.0 <= r[key] <= 1.0:
            return f"{key} {r.get(key)!r}, expected a fraction in [0, 1]"
    return None


def result_problem(r: dict[str, Any], genotype: Genotype, seed: int, recipe: Recipe) -> str | None:
    """Why a cached ``standalone.json`` cannot stand for this training (another genotype, seed or recipe, a
    metric that is not a fraction in [0, 1], a negative time), or None. A hand-edited or foreign file is trained
    again rather than reported."""
    fitted = () if r.get("train_acc") is None else ("train_acc",)  # results written before it was recorded lack it
    problem = cached_problem(r, genotype.tostr(), seed, recipe, ("rank1", "mAP", "mINP", *fitted))
    if problem:
        return problem
    if not finite_number(r.get("train_s")) or r["train_s"] < 0:
        return f"train_s {r.get('train_s')!r}, expected seconds >= 0"
    return None


def train_genotype(genotype: Genotype, data: ReIDData, recipe: Recipe, seed: int, root: Path,
                   progress: bool = False, channels_last: bool = False) -> dict[str, Any]:
    """Train ``genotype`` with ``recipe`` and seed ``seed`` (init, batches, augmentation) and evaluate it on the
    proxy's query/gallery: returns rank-1, mAP, mINP, the training time and the run folder.

    ``channels_last``: NHWC memory layout (:class:`hwnas.training.TrainConfig`), for speed only; it is not part
    of the recipe (a finished training is reused, an interrupted one continues in either layout) and is recorded
    in the result, as are the device (CPU name) and torch version it finished on (a run resumed in a later session
    may finish on another machine)."""
    out = run_dir(root, genotype, seed, recipe)
    done = out / RESULT_FILE
    cached = read_json_cache(done, RESULT_KEYS, lambda r: result_problem(r, genotype, seed, recipe))
    if cached is not None:
        return cached
    config = recipe.train_config(seed).replace(channels_last=channels_last)
    options = {"genotype": genotype.tostr(), "width_mult": recipe.width_mult, "num_classes": data.num_classes,
               "neck": recipe.neck}
    torch.manual_seed(seed)
    model = hwnas.create_model(genotype.space, **options)
    trainer = Trainer(model, data, config, out, model_name=genotype.space, model_options=options, progress=progress)
    if (out / "last.pt").is_file():
        trainer.resume()
    metrics = trainer.fit() or evaluate(trainer.model, data, config, trainer.device)  # {}: finished before a crash
    epochs = [r for r in read_json_lines(out / METRICS)[0] if isinstance(r, dict)]
    result = {"genotype": genotype.tostr(), "seed": seed, "rank1": float(metrics["rank1"]),
              "mAP": float(metrics["mAP"]), "mINP": float(metrics["mINP"]),
              "train_s": round(sum(r.get("time_s", 0.0) for r in epochs), 1),
              "train_acc": float(epochs[-1]["acc"]) if epochs and "acc" in epochs[-1] else None,
              "recipe": recipe.to_dict(), "channels_last": channels_last, "device": device_name(trainer.device.type),
              "torch": torch.__version__, "folder": str(out)}
    write_json_atomic(done, result)
    return result
