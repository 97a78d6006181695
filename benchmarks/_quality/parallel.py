"""The benchmark's independent jobs (stand-alone trainings, searches) in worker processes (``--workers N``).

Each job is resumable on its own (its folder holds its result, or a checkpoint to continue from), so a pool that
is stopped half-way loses at most the epochs in flight. Workers are started with ``spawn`` (no forked torch
state) and run ``threads`` torch threads each; a job's result does not depend on the process that ran it (same
seed, same thread count: tests/test_search_quality.py compares a parallel and a serial run).
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger("benchmarks.search_quality")

_DATA: dict[str, Any] = {}  # per worker: the ReID data of a training root, loaded once


ORPHAN_POLL_S = 1.0


def _exit_when_orphaned(parent: int, poll_s: float) -> None:
    """Stop this worker once the benchmark's process is gone (killed with SIGTERM or SIGKILL, which, unlike
    Ctrl-C, reaches only the parent): an orphan would go on training for hours into a folder no one reads. Its
    files stay whole (every write is atomic) and the job resumes from its checkpoint on the next run."""
    while os.getppid() == parent:
        time.sleep(poll_s)
    os._exit(3)


def _init_worker(threads: int, parent: int | None = None, poll_s: float = ORPHAN_POLL_S) -> None:
    torch.set_num_threads(threads)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    if parent is not None:
        threading.Thread(target=_exit_when_orphaned, args=(parent, poll_s), daemon=True,
                         name="exit-when-orphaned").start()


def run_jobs(fn: Callable[..., Any], jobs: Sequence[tuple], workers: int, threads: int,
             describe: Callable[[tuple, Any], str] | None = None) -> list[Any]:
    """``[fn(*job) for job in jobs]``, in ``workers`` processes when ``workers > 1`` (``fn`` must be a module-level
    function and the jobs picklable). Results come back in the order of ``jobs``; the first job that raises stops
    the pool (the jobs not started are cancelled; finished ones keep their results on disk) and its error is
    raised here. ``describe(job, result)``: a log line per finished job."""
    if workers <= 1 or len(jobs) <= 1:
        results = []
        for job in jobs:
            results.append(fn(*job))
            if describe is not None:
                logger.info("%s", describe(job, results[-1]))
        return results
    start = time.perf_counter()
    results: list[Any] = [None] * len(jobs)
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker, initargs=(threads, os.getpid())) as pool:
        pending = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    i = pending.pop(future)
                    results[i] = future.result()
                    if describe is not None:
                        logger.info("[%d/%d done, %.0f s] %s", len(jobs) - len(pending), len(jobs),
                                    time.perf_counter() - start, describe(jobs[i], results[i]))
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return results


def train_job(genotype: str, seed: int, recipe: Any, train_root: str, out: str,
              channels_last: bool = False, test_root: str | None = None) -> dict[str, Any]:
    """One stand-alone training in a worker (:func:`benchmarks._quality.standalone.train_genotype`), scored on the
    market test set in ``test_root`` when given (:func:`benchmarks._quality.testset.market_score`)."""
    from benchmarks._quality.testset import reid_data, train_and_score
    from hwnas.space.genotype import Genotype

    for root in (train_root, test_root):
        if root is not None and root not in _DATA:
            _DATA[root] = reid_data(Path(root))
    return train_and_score(Genotype.fromstr(genotype), _DATA[train_root], recipe, seed, Path(out),
                           None if test_root is None else _DATA[test_root], channels_last=channels_last)


def search_job(config: Any, data_root: str, out: str, table_path: str, progress: bool) -> None:
    """One search in a worker (:func:`hwnas.search.runner.run_search`), resuming from its checkpoint if any."""
    from hwnas.latency import load_table
    from hwnas.search.runner import prepare_data, run_search

    sub = Path(out)
    data = prepare_data(config, Path(data_root), threads=1)
    table = load_table(Path(table_path), space=config.space)
    run_search(config, data, sub, table, resume=(sub / "checkpoints" / "last.pt").is_file(), progress=progress)
