"""Whole networks timed end to end on a table's runtime and setting: the check of a table (``validate``) and
the calibration of its composition (``build --calibrate``) share this harness, so both count the same time.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from hwnas import ops
from hwnas.deploy.runtimes import session
from hwnas.errors import UsageError
from hwnas.latency.schema import RUNTIMES, Setting
from hwnas.latency.timing import summarize, time_interleaved
from hwnas.models import create_model
from hwnas.space.candidates import NUM_SEARCHABLE_LAYERS, candidates
from hwnas.space.genotype import Genotype

TORCH_DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def check_runtime(runtime: str, device: str, dtype: str) -> None:
    """Deployment runtimes other than eager PyTorch run fp32 on the CPU here; say so before any work."""
    if runtime not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}, --runtime, expected one of {', '.join(RUNTIMES)}")
    if runtime != "eager" and (device != "cpu" or dtype != "fp32"):
        raise UsageError(f"runtime {runtime} on {device} in {dtype}, --runtime, expected --device cpu and fp32 "
                         "(only the eager runtime times CUDA or half precision)")


def random_genotypes(space: str, n: int, seed: int = 0, exclude: Sequence[Genotype] = ()) -> list[Genotype]:
    """``n`` distinct genotypes, each layer's candidate uniform over the space (explicit generator), none of
    ``exclude`` (e.g. a table's calibration genotypes, kept apart from its validation)."""
    gen = torch.Generator().manual_seed(seed)
    n_cand = len(candidates(space))
    if n > n_cand ** NUM_SEARCHABLE_LAYERS - len(exclude):
        raise UsageError(f"{n} distinct {space} genotypes asked for (excluding {len(exclude)}), random_genotypes, "
                         f"expected at most {n_cand ** NUM_SEARCHABLE_LAYERS - len(exclude)}")
    skip = set(exclude)
    out: dict[Genotype, None] = {}
    while len(out) < n:
        idx = torch.randint(n_cand, (NUM_SEARCHABLE_LAYERS,), generator=gen).tolist()
        g = Genotype.from_indices(space, idx)
        if g not in skip:
            out[g] = None
    return list(out)


def network_calls(genotypes: Sequence[Genotype], setting: Setting, runtime: str, device: str,
                  seed: int = 0) -> list[Callable[[], Any]]:
    """One zero-argument forward per genotype: the model built by ``hwnas.create_model`` in the table's setting
    (eval mode), on ``runtime`` (a :func:`hwnas.deploy.session` at the setting's batch, resolution, threads)."""
    check_runtime(runtime, device, setting.dtype)
    torch.manual_seed(seed)
    dev, dtype = torch.device(device), TORCH_DTYPES[setting.dtype]
    x = torch.randn(setting.batch_size, 3, *setting.resolution, device=dev, dtype=dtype)
    calls = []
    for g in genotypes:
        model = create_model(g.space, genotype=g, width_mult=setting.width_mult, neck=setting.neck).eval()
        if runtime == "eager":
            model = model.to(dev, dtype)
            calls.append(lambda m=model: m(x))
        else:
            sess = session(model, runtime, input_size=setting.resolution, batch=setting.batch_size,
                           threads=setting.threads)
            calls.append(sess.bind(x))
    return calls


def time_networks(genotypes: Sequence[Genotype], setting: Setting, runtime: str, device: str, *, backend: str,
                  warmup: int, repeats: int, timer: str, seed: int = 0, progress: bool = False,
                  desc: str = "networks") -> list[tuple[float, float]]:
    """(median, IQR) in ms of each genotype's forward, all timed interleaved round by round."""
    calls = network_calls(genotypes, setting, runtime, device, seed)
    with ops.use_backend(backend):
        samples = time_interleaved(calls, device, warmup, repeats, progress, desc=desc, timer=timer)
    return [summarize(s) for s in samples]
