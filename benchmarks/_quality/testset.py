"""The test set a benchmark training is scored on: the proxy's own query/gallery, or one of Market-1501's size.

``proxy``: the stand-alone dataset's own test split (64 identities, 192 queries, 915 gallery images), scored at the
end of each training. With the 160-epoch recipe it saturates: the 24 random genotypes reach 93.8-97.3% mAP (IQR 1.2
points) against a seed-to-seed spread of 1.1 (max 1.5), so it barely tells architectures apart
(``benchmarks/results/search_quality_recipe160_proxy.md``).

``market``: each finished training's checkpoint is scored again on a test split of Market-1501's size from the same
generator and data seed (750 identities, 3,368 queries, 15,913 gallery images with distractors and junk boxes, as
``python -m hwnas.data.synthetic --market-test-sizes`` writes; the training images are the same bytes, so the
trainings are the same). The same trainings then reach 77.9-88.8% mAP (IQR 3.4 points) against a seed spread of
0.5 (``benchmarks/results/search_quality.md``). The score is cached beside the training (``eval-market.json``) and
kept by ``--export``; the proxy's own score stays in the report's JSON (``proxy_test``).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from benchmarks._quality.standalone import Recipe, cached_problem, run_dir, train_genotype
from hwnas._io import read_json_cache, write_json_atomic
from hwnas.envinfo import device_name
from hwnas.errors import CheckpointError, UsageError
from hwnas.space.genotype import Genotype
from hwnas.training import ReIDData, evaluate

TEST_SETS = ("proxy", "market")
MARKET_RESULT_FILE = "eval-market.json"
MARKET_DATA_FOLDER = "data-test-market"
MARKET_KEYS = ("genotype", "seed", "recipe", "test_set", "rank1", "mAP", "mINP", "num_query", "num_gallery", "trained")
METRIC_KEYS = ("rank1", "mAP", "mINP")


def market_counts() -> tuple[int, int]:
    """(queries, kept gallery images) of the market test split (``hwnas.data.synthetic``'s Market-1501 sizes)."""
    import hwnas.data.synthetic as syn

    return syn.MARKET_QUERY, syn.MARKET_GALLERY_REAL + syn.MARKET_DISTRACTORS


def _trained(result: dict[str, Any]) -> dict[str, Any]:
    """What identifies the training a market score belongs to (its proxy score and time: a training done again
    differs in them, and its old market score is then not reused)."""
    return {k: result.get(k) for k in ("mAP", "rank1", "train_s")}


def market_problem(r: dict[str, Any], trained: dict[str, Any], recipe: Recipe) -> str | None:
    """Why a cached ``eval-market.json`` cannot stand for the training ``trained`` (its ``standalone.json``), or
    None."""
    problem = cached_problem(r, trained["genotype"], trained["seed"], recipe, METRIC_KEYS)
    if problem:
        return problem
    if r.get("test_set") != "market":
        return f"another test set ({r.get('test_set')!r})"
    if r.get("trained") != _trained(trained):
        return "scored for another training of this genotype (the training was done again)"
    counts = (r.get("num_query"), r.get("num_gallery"))
    if any(type(c) is not int for c in counts) or counts != market_counts():
        return (f"{counts[0]!r} queries and {counts[1]!r} gallery images, expected the market test split's "
                f"{market_counts()[0]} and {market_counts()[1]}")
    return None


def market_score(trained: dict[str, Any], genotype: Genotype, seed: int, recipe: Recipe, root: Path,
                 data: ReIDData) -> dict[str, Any]:
    """Rank-1, mAP and mINP of the finished training ``trained`` (its ``standalone.json``) on ``data``'s query and
    gallery (the market test split), from its checkpoint, with the recipe's test settings; cached in the training's
    folder as ``eval-market.json``.

    Raises :class:`UsageError` when the checkpoint is gone (a folder made by ``--export`` keeps the scores, not the
    checkpoints) and :class:`CheckpointError` when it is not the finished training's last epoch."""
    from hwnas.training.checkpoint import model_from_checkpoint

    folder = run_dir(root, genotype, seed, recipe)
    cache = folder / MARKET_RESULT_FILE
    cached = read_json_cache(cache, MARKET_KEYS, lambda r: market_problem(r, trained, recipe))
    if cached is not None:
        return cached
    checkpoint = folder / "last.pt"
    if not checkpoint.is_file():
        raise UsageError(f"no checkpoint to score on the market test set, {checkpoint}, expected the finished "
                         "training's last.pt: a folder made by --export keeps the market scores it had, not the "
                         f"checkpoints; continue in the run's own folder, or delete {folder} to train it again")
    started = time.perf_counter()
    model, ckpt = model_from_checkpoint(checkpoint, "cpu")
    if ckpt.get("epoch") != recipe.epochs or type(ckpt.get("epoch")) is not int:
        raise CheckpointError(f"epoch is {ckpt.get('epoch')!r}, checkpoint '{checkpoint}', expected the finished "
                              f"training's last epoch ({recipe.epochs}) beside its standalone.json")
    other = checkpoint_problem(ckpt, genotype, seed, recipe)
    if other:
        raise CheckpointError(f"{other}, checkpoint '{checkpoint}', expected the checkpoint of this training "
                              f"({genotype.tostr()}, seed {seed}, the benchmark's recipe): delete {folder} to train "
                              "it again")
    metrics = evaluate(model.eval(), data, recipe.train_config(seed), torch.device("cpu"))
    result = {"genotype": genotype.tostr(), "seed": seed, "recipe": recipe.to_dict(), "test_set": "market",
              **{k: float(metrics[k]) for k in METRIC_KEYS},
              "num_query": len(data.query), "num_gallery": len(data.gallery),
              "eval_s": round(time.perf_counter() - started, 1), "device": device_name("cpu"),
              "torch": torch.__version__, "trained": _trained(trained)}
    write_json_atomic(cache, result)
    return result


def checkpoint_problem(ckpt: dict[str, Any], genotype: Genotype, seed: int, recipe: Recipe) -> str | None:
    """How the checkpoint ``ckpt`` is not the one this training writes (another model, genotype, width, neck, seed
    or recipe setting), or None; the memory layout (``channels_last``) may differ."""
    import json

    options = ckpt.get("model_options") if isinstance(ckpt.get("model_options"), dict) else {}
    have = {"model": ckpt.get("model_name"), "genotype": options.get("genotype"),
            "width_mult": options.get("width_mult"), "neck": options.get("neck")}
    want = {"model": genotype.space, "genotype": genotype.tostr(), "width_mult": recipe.width_mult,
            "neck": recipe.neck}
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    expected = json.loads(json.dumps(recipe.train_config(seed).to_dict()))
    have.update({f"config {k}": config.get(k) for k in expected if k != "channels_last"})
    want.update({f"config {k}": v for k, v in expected.items() if k != "channels_last"})
    diff = [f"{k} {have[k]!r}, not {want[k]!r}" for k in want if have[k] != want[k]]
    return "; ".join(diff[:3]) + (f" (and {len(diff) - 3} more)" if len(diff) > 3 else "") if diff else None


def scored(trained: dict[str, Any], market: dict[str, Any] | None) -> dict[str, Any]:
    """The training's result as the report reads it: with a market score, its rank-1/mAP/mINP replace the proxy
    test's, which are kept under ``proxy_test``."""
    if market is None:
        return trained
    return {**trained, **{k: market[k] for k in METRIC_KEYS}, "test_set": "market",
            "proxy_test": {k: trained[k] for k in METRIC_KEYS}}


def train_and_score(genotype: Genotype, data: ReIDData, recipe: Recipe, seed: int, root: Path,
                    test_data: ReIDData | None = None, progress: bool = False, channels_last: bool = False
                    ) -> dict[str, Any]:
    """:func:`~benchmarks._quality.standalone.train_genotype`, then, with ``test_data`` (the market test split),
    :func:`market_score` of the finished training: the result as the report reads it (:func:`scored`)."""
    trained = train_genotype(genotype, data, recipe, seed, root, progress=progress, channels_last=channels_last)
    if test_data is None:
        return trained
    return scored(trained, market_score(trained, genotype, seed, recipe, root, test_data))


def reid_data(root: Path) -> ReIDData:
    """The train/query/gallery of the Market-1501-format folder ``root``."""
    from hwnas.data.datasets import Market1501

    return ReIDData.from_dataset(Market1501(root))
