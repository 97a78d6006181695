"""Timing primitives shared by table builds, end-to-end validation and reports: interleaved rounds, timers.

Timing is *interleaved*: every round times each call once, so a burst of load from other processes spreads
over all calls instead of biasing a few; callers keep the median of the rounds and the interquartile range.
GPU samples use CUDA events. CPU samples use either wall time (``time.perf_counter``) or, with one thread,
the thread's CPU time (``time.thread_time``): on a machine shared with other jobs the latter leaves out the
time the scheduler gives to other processes. With one thread every runtime hwnas times (PyTorch, the compiled
ops, onnxruntime, OpenVINO) computes on the calling thread, so its CPU time is the computation's.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from tqdm import tqdm

from hwnas.errors import UsageError

TIMERS: tuple[str, ...] = ("auto", "wall", "thread_cpu", "cuda_events")


def apply_threads(threads: int | None) -> None:
    if threads is not None:
        torch.set_num_threads(threads)


def resolve_timer(timer: str, device: str, threads: int | None) -> str:
    """``auto``: CUDA events on GPU, thread CPU time for single-threaded CPU runs, else wall time.

    Raises :class:`hwnas.errors.UsageError` for a timer the device or thread count cannot use.
    """
    if device == "cuda":
        if timer not in ("auto", "cuda_events"):
            raise UsageError(f"timer {timer!r} on cuda, --timer, expected cuda_events (or auto)")
        return "cuda_events"
    if timer == "cuda_events":
        raise UsageError("the cuda_events timer on the CPU, --timer, expected --device cuda for cuda_events")
    if timer == "thread_cpu" and threads != 1:
        raise UsageError(f"the thread_cpu timer with {threads} threads, --timer, expected --threads 1 (it needs "
                         "exactly 1 CPU thread)")
    if timer == "auto":
        return "thread_cpu" if threads == 1 else "wall"
    return timer


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_interleaved(calls: Sequence[Callable[[], Any]], device: str, warmup: int, repeats: int,
                     progress: bool = False, desc: str = "timing", timer: str = "wall",
                     prime: bool = True) -> list[list[float]]:
    """Per-call latency samples in ms: ``repeats`` rounds, each timing every call once (after ``warmup``).

    ``timer`` as returned by :func:`resolve_timer` (``cuda_events`` on GPU). With ``prime`` each timed call
    directly follows an untimed one, so its weights and input are as warm in cache as inside a whole network
    (where a layer reads the output its predecessor has just written); otherwise every sample would pay for
    the cache misses left by the other entries of the round.
    """
    with torch.inference_mode():
        for call in calls:
            for _ in range(warmup):
                call()
        _sync(device)
        samples: list[list[float]] = [[] for _ in calls]
        for _ in tqdm(range(repeats), desc=desc, disable=not progress, unit="round"):
            for i, call in enumerate(calls):
                if prime:
                    call()
                    _sync(device)
                samples[i].append(_time_once(call, timer))
    return samples


def _time_once(call: Callable[[], Any], timer: str) -> float:
    if timer == "cuda_events":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        end.synchronize()
        return float(start.elapsed_time(end))
    clock = time.thread_time if timer == "thread_cpu" else time.perf_counter
    t0 = clock()
    call()
    return (clock() - t0) * 1e3


def summarize(samples: Sequence[float]) -> tuple[float, float]:
    """(median, interquartile range) in ms."""
    q = statistics.quantiles(samples, n=4, method="inclusive")
    return float(statistics.median(samples)), float(q[2] - q[0])
