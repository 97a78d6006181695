"""One search end to end: data (a Market-1501 folder or the synthetic one), latency table, loop, outputs."""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from hwnas.search import _dist
from hwnas.search._data import SearchData, market_search_data
from hwnas.search.config import SearchConfig, SyntheticData
from hwnas.search.loop import Searcher, SearchResult
from hwnas.search.report import write_outputs

logger = logging.getLogger(__name__)

SYNTHETIC_DIRNAME = "synthetic-market"


def synthetic_dataset(folder: Path, spec: SyntheticData) -> Path:
    """Generate ``spec`` into ``folder`` (reused when a complete copy with the same settings is there).

    Written into a temporary folder and renamed, so an interrupted generation is never mistaken for data.
    Under DDP only rank 0 writes; the others wait.
    """
    from hwnas.data.synthetic import generate_synthetic_market

    info = _dist.current()
    marker = folder / "SYNTHETIC.json"
    if info.is_main and not (marker.is_file() and _same_settings(marker, spec)):
        if folder.exists():
            raise FileExistsError(f"'{folder}' exists but is not the synthetic dataset {spec}; remove it or pick "
                                  f"another --output")
        tmp = folder.with_name(f".{folder.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        generate_synthetic_market(tmp, num_ids=spec.num_ids, images_per_id=spec.images_per_id,
                                  num_cameras=spec.num_cameras, image_size=spec.image_size, seed=spec.seed)
        tmp.replace(folder)
    _dist.barrier(info)
    return folder


def _same_settings(marker: Path, spec: SyntheticData) -> bool:
    try:
        s = json.loads(marker.read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    want = dataclasses.asdict(spec)
    return all(list(s.get(k)) == list(v) if isinstance(v, tuple) else s.get(k) == v for k, v in want.items())


def prepare_data(config: SearchConfig, data_root: Path, threads: int = 2) -> SearchData:
    """The train/validation split (``config.val_split``) of the Market-1501-format folder ``data_root``."""
    return market_search_data(data_root, config.image_size, config.ids_per_batch, config.images_per_id,
                              config.val_per_id, config.seed, threads, val_split=config.val_split)


def run_search(config: SearchConfig, data: SearchData, output: Path, table: Any = None, device: str = "cpu",
               resume: bool = False, progress: bool = True) -> tuple[SearchResult, dict[str, Path]]:
    """Search into ``output`` and write its reports (rank 0); returns the result and the written files."""
    start = time.perf_counter()
    searcher = Searcher(config, data, output, table, device=device, progress=progress)
    result = searcher.run(resume=resume)
    assert result is not None  # run() only returns None when asked to stop early
    paths: dict[str, Path] = {}
    if searcher.dist.is_main:
        paths = write_outputs(output, config, result, table, data.description, time.perf_counter() - start)
    _dist.barrier(searcher.dist)
    return result, paths


def default_threads(synthetic: bool) -> int:
    """Intra-op threads: 1 for the tiny synthetic schedule (oversubscribing a busy CPU costs 10x), else torch's."""
    return 1 if synthetic else torch.get_num_threads()
