"""The seed's Table 5 inference-timing protocol: time ReID inference over the Market-1501 test set.

One run = every test image (3,368 query + 15,913 gallery = 19,281 on Market-1501) read from JPEG,
decoded and transformed through a real DataLoader, moved to the device, passed through the model in
batches of 128, then the ranking step of evaluation (L2-normalised features, (Q, G) squared-euclidean
distances, CMC/mAP by :func:`hwnas.evaluation.evaluate_rank`). The seed's ``test`` config normalises
features (``FEAT_NORM: yes``); its Table 5 reports the mean of 5 runs.

Breakdown of a run (seconds, wall clock; the device is synchronised at each boundary):
``data`` = time the main process waits for the next batch (worker start-up included; with workers,
loading that overlaps the forward is hidden, as in real use), ``h2d`` = copy to the device plus dtype /
memory-format conversion, ``forward`` = the model, ``rank`` = the ranking step; ``total`` is the wall time
of the whole run (the four parts plus Python overhead).
"""
from __future__ import annotations

import contextlib
import logging
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

import hwnas
from hwnas import ops
from hwnas.data import ImageDataset, build_transforms
from hwnas.errors import UsageError

logger = logging.getLogger(__name__)

Item = tuple[str, int, int]
BACKENDS: tuple[str, ...] = ("eager", "compiled", "triton")
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
PHASES: tuple[str, ...] = ("data", "h2d", "forward", "rank")


@dataclass(frozen=True)
class ProtocolConfig:
    """How to run the protocol; the defaults are the seed's (batch 128, 5 runs, 256 x 128 input)."""

    device: str = "cpu"
    dtype: str = "float32"
    backend: str = "eager"
    channels_last: bool = False
    batch_size: int = 128
    workers: int = 4
    runs: int = 5
    warmup: int = 3
    height: int = 256
    width: int = 128

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise UsageError(f"unknown dtype {self.dtype!r}, --dtype, expected one of {', '.join(DTYPES)}")
        allowed = sorted(set(BACKENDS) | set(ops.available_backends()))
        if self.backend not in allowed:
            raise UsageError(f"unknown backend {self.backend!r}, --backend, expected one of {', '.join(allowed)}")
        for name in ("batch_size", "runs", "height", "width"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} {getattr(self, name)}, --{name.replace('_', '-')}, expected an integer >= 1")
        if self.workers < 0 or self.warmup < 0:
            raise UsageError(f"workers {self.workers} / warmup {self.warmup}, --workers / --warmup, expected "
                             "integers >= 0")


@dataclass(frozen=True)
class RunTimes:
    """Seconds spent in one run, per phase (see the module docstring)."""

    total: float
    data: float
    h2d: float
    forward: float
    rank: float


@dataclass(frozen=True)
class ModelResult:
    """All timed runs of one model, with its counts and the (sanity) ranking scores of the last run."""

    model: str
    num_query: int
    num_gallery: int
    runs: tuple[RunTimes, ...]
    rank1: float
    mAP: float
    params_m: float
    flops_m: float

    @property
    def num_images(self) -> int:
        return self.num_query + self.num_gallery

    def mean(self, phase: str = "total") -> float:
        return statistics.fmean(getattr(r, phase) for r in self.runs)

    def std(self, phase: str = "total") -> float:
        """Sample standard deviation over runs (0 for a single run)."""
        values = [getattr(r, phase) for r in self.runs]
        return statistics.stdev(values) if len(values) > 1 else 0.0


def select_test_items(query: Sequence[Item], gallery: Sequence[Item],
                      num_images: int | None = None) -> tuple[list[Item], list[Item]]:
    """The test set, or an evenly spaced subset of ``num_images`` keeping the query : gallery proportion."""
    if num_images is None or num_images >= len(query) + len(gallery):
        return list(query), list(gallery)
    if num_images < 2:
        raise UsageError(f"num_images {num_images}, --num-images, expected an integer >= 2 (one query and one "
                         "gallery image)")
    nq = min(len(query), max(1, round(num_images * len(query) / (len(query) + len(gallery)))))
    nq = min(nq, num_images - 1)
    return _evenly(query, nq), _evenly(gallery, num_images - nq)


def _evenly(items: Sequence[Item], n: int) -> list[Item]:
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def warm_file_cache(items: Sequence[Item]) -> int:
    """Read every image file once so that no model is timed against a cold disk; returns bytes read."""
    return sum(len(Path(path).read_bytes()) for path, _, _ in items)


def build_loader(items: Sequence[Item], cfg: ProtocolConfig) -> DataLoader:
    """Fixed-order test loader: JPEG decode + resize + normalise in ``cfg.workers`` worker processes."""
    dataset = ImageDataset(items, build_transforms(cfg.height, cfg.width, train=False))
    return DataLoader(dataset, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.workers,
                      pin_memory=torch.device(cfg.device).type == "cuda", persistent_workers=False)


def _synchronizer(device: torch.device) -> Callable[[], None]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


@contextlib.contextmanager
def ops_backend(cfg: ProtocolConfig) -> Iterator[str]:
    """The hwnas.ops backend a protocol backend runs under (``compiled`` compiles the eager ops).

    Besides eager / compiled / triton, any registered hwnas.ops backend name (e.g. ``batched``) is accepted.
    """
    with ops.use_backend("eager" if cfg.backend == "compiled" else cfg.backend) as name:
        yield name


def prepare_model(name: str, cfg: ProtocolConfig, model: nn.Module | None = None) -> nn.Module:
    """A registered model (or ``model``) in eval mode on the device, dtype and memory format of ``cfg``."""
    model = (model if model is not None else hwnas.create_model(name)).eval()
    model = model.to(device=torch.device(cfg.device), dtype=DTYPES[cfg.dtype])
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if cfg.backend == "compiled":
        model = torch.compile(model, dynamic=False)
    return model


def _to_device(images: torch.Tensor, cfg: ProtocolConfig) -> torch.Tensor:
    x = images.to(torch.device(cfg.device), non_blocking=True).to(DTYPES[cfg.dtype])
    return x.contiguous(memory_format=torch.channels_last) if cfg.channels_last else x


def warm_up(model: nn.Module, cfg: ProtocolConfig, num_images: int) -> None:
    """``cfg.warmup`` forward passes at each batch shape the run will see (compiles, autotunes, fills caches)."""
    sizes = {min(cfg.batch_size, num_images)}
    if num_images % cfg.batch_size:
        sizes.add(num_images % cfg.batch_size)
    sync = _synchronizer(torch.device(cfg.device))
    with torch.inference_mode():
        for n in sorted(sizes):
            x = _to_device(torch.randn(n, 3, cfg.height, cfg.width), cfg)
            for _ in range(cfg.warmup):
                model(x)
    sync()


def rank_step(features: torch.Tensor, pids: torch.Tensor, camids: torch.Tensor, num_query: int) -> dict:
    """Ranking step of evaluation: normalise, (Q, G) squared-euclidean distances, CMC / mAP."""
    from hwnas.evaluation import evaluate_rank

    f = F.normalize(features.float(), dim=1)
    qf, gf = f[:num_query], f[num_query:]
    dist = (2 - 2 * qf @ gf.t()).clamp_min(0)  # |q - g|^2 for unit vectors
    return evaluate_rank(dist.cpu(), pids[:num_query], pids[num_query:], camids[:num_query], camids[num_query:])


def time_one_run(model: nn.Module, loader: DataLoader, cfg: ProtocolConfig, num_query: int) -> tuple[RunTimes, dict]:
    """One timed pass over ``loader`` (query items first, then gallery) and the ranking step."""
    sync = _synchronizer(torch.device(cfg.device))
    spent = dict.fromkeys(PHASES, 0.0)
    feats, pids, camids = [], [], []
    start = time.perf_counter()
    batches = iter(loader)
    with torch.inference_mode():
        while True:
            t0 = time.perf_counter()
            batch = next(batches, None)
            t1 = time.perf_counter()
            spent["data"] += t1 - t0
            if batch is None:
                break
            images, pid, camid = batch
            x = _to_device(images, cfg)
            sync()
            t2 = time.perf_counter()
            feats.append(model(x))
            sync()
            t3 = time.perf_counter()
            spent["h2d"] += t2 - t1
            spent["forward"] += t3 - t2
            pids.append(pid)
            camids.append(camid)
        t4 = time.perf_counter()
        scores = rank_step(torch.cat(feats), torch.cat(pids), torch.cat(camids), num_query)
        sync()
    end = time.perf_counter()
    spent["rank"] = end - t4
    return RunTimes(total=end - start, **spent), scores


def benchmark_model(name: str, query: Sequence[Item], gallery: Sequence[Item], cfg: ProtocolConfig,
                    counts: tuple[float, float] = (math.nan, math.nan),
                    model: nn.Module | None = None) -> ModelResult:
    """Warm up, then ``cfg.runs`` timed runs of the protocol for one model; ``counts`` = (params M, FLOPs M)."""
    with ops_backend(cfg):
        net = prepare_model(name, cfg, model)
        items = list(query) + list(gallery)
        warm_up(net, cfg, len(items))
        loader = build_loader(items, cfg)
        runs, scores = [], {}
        for r in range(cfg.runs):
            times, scores = time_one_run(net, loader, cfg, len(query))
            logger.info("%s run %d/%d: %.2f s (data %.2f, h2d %.2f, forward %.2f, rank %.2f)", name, r + 1,
                        cfg.runs, times.total, times.data, times.h2d, times.forward, times.rank)
            runs.append(times)
    return ModelResult(name, len(query), len(gallery), tuple(runs), float(scores["cmc"][0]), float(scores["mAP"]),
                       counts[0], counts[1])
