"""One search end to end: data (a Market-1501 folder or the synthetic one), latency table, loop, outputs."""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from hwnas.errors import OutputError
from hwnas.search import _dist
from hwnas.search._data import SearchData, market_search_data
from hwnas.search.config import SearchConfig, SyntheticData
from hwnas.search.loop import Searcher, SearchResult
from hwnas.search.report import write_outputs

logger = logging.getLogger(__name__)

SYNTHETIC_DIRNAME = "synthetic-market"


def synthetic_dataset(folder: Path, spec: SyntheticData, *, market_test_sizes: bool = False) -> Path:
    """Generate ``spec`` into ``folder`` (reused when a complete copy with the same settings is there).

    ``market_test_sizes``: the test split of Market-1501's size instead of one as large as the training split
    (:func:`hwnas.data.synthetic.generate_synthetic_market`; the training images are the same either way).
    Written into a temporary folder and renamed, so an interrupted generation is never mistaken for data.
    Under DDP only rank 0 writes; the others wait.
    """
    from hwnas.data.datasets import SYNTHETIC_MARKER
    from hwnas.data.synthetic import generate_synthetic_market_atomic

    info = _dist.current()
    marker = folder / SYNTHETIC_MARKER
    if info.is_main and not (marker.is_file() and _same_settings(marker, spec, market_test_sizes)):
        expected = f"{spec}{' with a Market-1501-sized test split' if market_test_sizes else ''}"
        if folder.is_symlink() and not folder.exists():
            raise OutputError(f"broken symbolic link, {folder}, expected the synthetic dataset {expected} or nothing "
                              "there (remove the link or pick another --output)")
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"not a folder, {folder}, expected the synthetic dataset {expected} or nothing there "
                              "(remove it or pick another --output)")
        if folder.exists():
            raise OutputError(f"folder exists but is not the synthetic dataset of these settings, {folder}, "
                              f"expected {expected} (remove it or pick another --output)")
        generate_synthetic_market_atomic(folder, num_ids=spec.num_ids, images_per_id=spec.images_per_id,
                                         num_cameras=spec.num_cameras, image_size=spec.image_size, seed=spec.seed,
                                         market_test_sizes=market_test_sizes)
    _dist.barrier(info)
    return folder


def _same_settings(marker: Path, spec: SyntheticData, market_test_sizes: bool = False) -> bool:
    try:
        s = json.loads(marker.read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not isinstance(s, dict) or s.get("market_test_sizes", False) is not market_test_sizes:
        return False  # the same training images, another test split
    want = dataclasses.asdict(spec)
    return all(list(s.get(k)) == list(v) if isinstance(v, tuple) else s.get(k) == v for k, v in want.items())


def prepare_data(config: SearchConfig, data_root: Path, threads: int = 2, dataset: str = "market1501",
                 check_counts: bool = True) -> SearchData:
    """The train/validation split (``config.val_split``) of the training images of ``data_root`` (read as the
    registered ``dataset``; ``market-format`` for any folder in Market-1501's layout)."""
    return market_search_data(data_root, config.image_size, config.ids_per_batch, config.images_per_id,
                              config.val_per_id, config.seed, threads, dataset, check_counts,
                              val_split=config.val_split)


def run_search(config: SearchConfig, data: SearchData, output: Path, table: Any = None, device: str = "cpu",
               resume: bool = False, progress: bool = True,
               tensorboard: bool = False) -> tuple[SearchResult, dict[str, Path]]:
    """Search into ``output`` and write its reports (rank 0); returns the result and the written files.

    ``tensorboard``: also write TensorBoard event files into ``output/tensorboard`` (needs the package).
    """
    start = time.perf_counter()
    searcher = Searcher(config, data, output, table, device=device, progress=progress)
    events = event_writer(output, config.space) if tensorboard and searcher.dist.is_main else None
    if events is not None:
        searcher.epoch_callbacks.append(events)
    try:
        result = searcher.run(resume=resume)
    finally:
        if events is not None:
            events.close()
    assert result is not None  # run() only returns None when asked to stop early
    paths: dict[str, Path] = {}
    if searcher.dist.is_main:
        paths = write_outputs(output, config, result, table, data.description, time.perf_counter() - start)
    _dist.barrier(searcher.dist)
    return result, paths


def event_writer(output: Path, space: str):
    """TensorBoard writer of the epoch records plus softmax(alpha) of every candidate (``alpha/layerL/<cand>``)."""
    from hwnas.space.candidates import candidates
    from hwnas.viz.tensorboard import open_writer

    names = [c.tostr(space) for c in candidates(space)]

    def alpha_probs(record: dict[str, Any]) -> dict[str, float]:
        probs = torch.softmax(torch.tensor(record["alphas"], dtype=torch.float64), dim=-1)
        return {f"alpha/layer{layer + 1}/{name}": float(probs[layer, i])
                for layer in range(probs.shape[0]) for i, name in enumerate(names)}

    return open_writer(True, output, extra=alpha_probs)


def default_threads(synthetic: bool) -> int:
    """Intra-op threads: 1 for the tiny synthetic schedule (oversubscribing a busy CPU costs 10x), else torch's."""
    return 1 if synthetic else torch.get_num_threads()
