"""Distributed search: two CPU processes (gloo) end with the same alphas, which did move, and a run stopped
mid-epoch and resumed on both ranks ends exactly where the uninterrupted one does."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hwnas.latency import load_table
from hwnas.search import SearchConfig, Searcher
from hwnas.search._data import SearchData, TensorBatches


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        g = torch.Generator().manual_seed(0)
        pids = torch.arange(4).repeat_interleave(8)
        images = torch.randn(32, 3, 32, 32, generator=g) + pids.view(-1, 1, 1, 1) * 0.3
        data = SearchData(TensorBatches(images, pids, 8, 4, seed=0, stream=0),
                          TensorBatches(images, pids, 8, 4, seed=0, stream=1), 4, "tiny")
        config = SearchConfig(width_mult=0.125, image_size=(32, 32), epochs=1, ids_per_batch=2, images_per_id=4,
                              alpha_lr=0.05, latency_weight=0.01, checkpoint_every=1)
        table = load_table("rtx2080", space="cdnet")
        searcher = Searcher(config, data, Path(out) / "full", table, progress=False)
        result = searcher.run()
        assert result is not None
        # killed after its second (last) step, before the epoch-end checkpoint: resumes mid-epoch from step 1
        assert Searcher(config, data, Path(out) / "cut", table, progress=False).run(stop_after_steps=2) is None
        resumed = Searcher(config, data, Path(out) / "cut", table, progress=False).run(resume=True)
        assert resumed is not None
        torch.save({"alphas": result.alphas, "head": searcher.model.head.classifier.weight.detach().clone(),
                    "steps": result.history[0]["steps"], "resumed": resumed.alphas}, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_end_with_identical_alphas_and_resume_exactly(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert torch.equal(r0["alphas"], r1["alphas"])
    assert torch.equal(r0["head"], r1["head"])
    assert r0["steps"] == 2  # 4 batches per epoch shared by 2 processes
    assert not torch.equal(r0["alphas"], torch.full_like(r0["alphas"], 1e-3))
    assert (tmp_path / "full" / "checkpoints" / "last.pt").is_file()
    assert torch.equal(r0["resumed"], r0["alphas"]) and torch.equal(r1["resumed"], r1["alphas"])
