"""A steady process heap for repeated CPU inference with PyTorch (eager and the compiled ``cpp`` path).

With glibc's default malloc settings, freeing a large activation tensor either unmaps it (chunks above the
dynamic mmap threshold) or trims the top of the heap back to the OS; the next forward allocates it again and
pays one minor page fault (a zeroed 4 KiB page) per page it touches. Measured on the 2-core KVM build machine
(benchmarks/results/latency_composition.md): 6,500 faults and ~17% of a CDNet forward at batch 4, 128x64, and a
cost that depends on the order and sizes of every allocation in the network, so per-block latencies measured
in isolation do not add up to the network's. Raising both thresholds (``mallopt``, the same as the environment
variables ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``, see ``man 3 mallopt``) keeps freed memory in
the heap, and the faults vanish after the first forward. onnxruntime and OpenVINO have their own arenas.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading

log = logging.getLogger(__name__)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc <malloc.h>
MMAP_THRESHOLD_BYTES = 32 * 2**20  # glibc's largest allowed mmap threshold on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD_BYTES = 2**30
_lock = threading.Lock()
_applied: dict[str, object] | None = None


def steady_heap() -> dict[str, object]:
    """Keep freed memory in this process's heap (glibc): no page faults when the next forward reallocates it.

    Process-wide and permanent (it sets the two malloc thresholds, which also turns off their dynamic
    adjustment); idempotent. Allocations above 32 MiB are still mapped per call. Returns what was set, for
    the record: ``{"allocator": "glibc", "mmap_threshold": ..., "trim_threshold": ...}``, or
    ``{"allocator": "unknown", "note": ...}`` where there is no glibc ``mallopt`` (nothing is changed then).
    """
    global _applied
    with _lock:
        if _applied is not None:
            return dict(_applied)
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError) as e:
            _applied = {"allocator": "unknown", "note": f"no glibc mallopt ({e}); heap left as it is"}
            return dict(_applied)
        ok = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
        _applied = ({"allocator": "glibc", "mmap_threshold": MMAP_THRESHOLD_BYTES, "trim_threshold": TRIM_THRESHOLD_BYTES}
                    if ok else {"allocator": "unknown", "note": "mallopt refused the thresholds; heap left as it is"})
        log.info("steady heap: %s", _applied)
        return dict(_applied)


def heap_state() -> dict[str, object] | None:
    """What :func:`steady_heap` set in this process, or ``None`` when it was not called (glibc defaults)."""
    return None if _applied is None else dict(_applied)
