"""The ``batched`` and ``triton`` ops backends against the eager reference: CBlocks, a supernet mixed op
step and a whole tiny CDNet, in train and eval mode (outputs, gradients, BN running statistics)."""
from __future__ import annotations

import copy
import importlib.util

import pytest
import torch
from torch import nn

import hwnas
from hwnas import ops
from hwnas.ops import _triton
from hwnas.space.blocks import CBlock, CDBlock


pytestmark = pytest.mark.usefixtures("triton_cpu")  # see tests/conftest.py


with _triton.cpu_interpreter():
    _TRITON = _triton.availability()  # imports the kernels (interpreted without a GPU)
BACKENDS = ["batched", pytest.param("triton", marks=pytest.mark.skipif(
    not _TRITON[0], reason=f"triton backend unavailable: {_TRITON[1]}"))]


def _cotangent(y: torch.Tensor) -> torch.Tensor:
    return torch.linspace(-1, 1, y.numel()).view_as(y).sin()


def run(backend: str, module: nn.Module, *inputs, forward=None):
    """Forward + backward on a copy of ``module``; returns output, input grads, param grads and buffers."""
    module = copy.deepcopy(module)
    inputs = [t.clone().requires_grad_() if t.is_floating_point() else t for t in inputs]
    torch.manual_seed(0)  # dropout in the necks
    with ops.use_backend(backend):
        y = (forward or module)(module, *inputs) if forward else module(*inputs)
    if torch.is_grad_enabled():
        (y * _cotangent(y)).sum().backward()
    grads = {n: p.grad for n, p in module.named_parameters() if p.grad is not None}
    buffers = {n: b.clone() for n, b in module.named_buffers()}
    return y, [t.grad for t in inputs if t.is_floating_point()], grads, buffers


def _close(got: torch.Tensor, want: torch.Tensor, tol: float, name: str = "") -> None:
    """fp32 closeness relative to the tensor's scale: gradients summed over many terms round at that scale."""
    scale = max(1.0, want.abs().max().item()) if want.is_floating_point() and want.numel() else 1.0
    torch.testing.assert_close(got, want, atol=tol * scale, rtol=tol, msg=name or None)


def assert_same(got, want, tol=1e-5):
    y, gin, gparams, buffers = got
    _close(y, want[0], tol, "output")
    for a, b in zip(gin, want[1]):
        _close(a, b, tol, "input gradient")
    assert gparams.keys() == want[2].keys()
    for name in gparams:
        _close(gparams[name], want[2][name], tol, name)
    for name in buffers:
        _close(buffers[name], want[3][name], tol, name)


# in, out, k1, k2, (N, H, W): H/W of 1, 3, 7 and batch 1
BLOCK_CASES = [(8, 16, 3, 7, (2, 3, 7)), (16, 16, 5, 9, (1, 7, 1)), (12, 20, 3, 5, (2, 1, 1))]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("case", BLOCK_CASES, ids=lambda c: "{}-{}-k{}{}".format(*c[:4]))
def test_cblock_matches_eager(backend, mode, case):
    torch.manual_seed(0)
    block = CBlock(*case[:4])
    if mode == "eval":  # non-trivial running statistics
        for m in block.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
    getattr(block, mode)()
    x = torch.randn(case[0], *case[4]).transpose(0, 1).contiguous()
    assert_same(run(backend, block, x), run("eager", block, x))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_cblock_within_2x_of_eager(backend, dtype):
    """A half-precision CBlock (train step): error against fp32 within ~2x of eager's in the same dtype."""
    torch.manual_seed(0)
    block = CBlock(8, 16, 3, 5).train()
    x = torch.randn(2, 8, 5, 3)
    exact = run("eager", block, x)
    eager = run("eager", block.to(dtype), x.to(dtype))
    got = run(backend, block.to(dtype), x.to(dtype))
    for name, want, e, g in [("output", exact[0], eager[0], got[0]), ("input gradient", exact[1][0], eager[1][0],
                                                                        got[1][0])]:
        err, eager_err = (g.float() - want).abs().max().item(), (e.float() - want).abs().max().item()
        assert g.dtype == dtype and err <= 2 * eager_err + 1e-3 * want.abs().max().item(), (name, err, eager_err)


@pytest.mark.parametrize("backend", BACKENDS)
def test_inference_without_grad_matches_eager(backend):
    """Eval + no_grad takes the triton backend's BN-folded path."""
    torch.manual_seed(0)
    block = CDBlock(8, 16, 3, 9, r=2).eval()
    x = torch.randn(2, 8, 3, 7)
    with torch.no_grad():
        got, want = run(backend, block, x), run("eager", block, x)
    _close(got[0], want[0], 1e-5)


@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_torch_compile_traces_triton_backend_in_one_graph(backend):
    """The custom ops (hwnas::lite_conv, ...) let dynamo trace a CBlock without graph breaks (fullgraph)."""
    torch.manual_seed(0)
    block = CBlock(8, 16, 3, 5).train()
    x = torch.randn(2, 8, 3, 5)

    def compiled(m, inp):
        return torch.compile(m, backend="aot_eager", fullgraph=True)(inp)

    assert_same(run(backend, block, x, forward=compiled), run("eager", block, x))


def _mixed_step(module: nn.Module, x: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """A supernet layer step: straight-through top-2 weights over the candidates, then the mixed op."""
    p = torch.softmax(alphas, dim=0)
    hard = torch.zeros_like(p).scatter_(0, p.topk(2).indices, 1.0)
    weights = hard - p.detach() + p
    selected = sorted(p.topk(2).indices.tolist())
    return ops.mixed_op(x, module.candidates, weights, selected)


class _Layer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        choices = [(3, 5, 1), (5, 7, 2), (3, 9, 2), (7, 9, 1)]
        self.candidates = nn.ModuleList(CDBlock(8, 16, k1, k2, r) for k1, k2, r in choices)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mixed_op_step_matches_eager(backend):
    torch.manual_seed(0)
    layer = _Layer().train()
    x = torch.randn(2, 8, 3, 5)
    alphas = torch.tensor([0.4, 0.5, 0.1, -0.2])  # selects (3,5,1) and (5,7,2): 2 blocks, then 1
    got = run(backend, layer, x, alphas, forward=_mixed_step)
    want = run("eager", layer, x, alphas, forward=_mixed_step)
    assert_same(got, want)
    assert got[1][1].abs().sum() > 0  # every alpha gets a gradient


@pytest.mark.parametrize("backend", BACKENDS)
def test_cumulative_bn_momentum_matches_eager(backend):
    """momentum=None: running stats are cumulative averages over num_batches_tracked (here the 3rd batch)."""
    torch.manual_seed(0)
    block = CBlock(8, 8, 3, 5).train()
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
            m.num_batches_tracked.fill_(2)
    x = torch.randn(2, 8, 3, 3)
    assert_same(run(backend, block, x), run("eager", block, x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_other_modules_fall_back_to_eager(backend):
    """Candidates or branches without the CBlock structure run through the eager reference."""
    torch.manual_seed(0)
    convs = nn.ModuleList([nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 1)])
    x, weights = torch.randn(1, 4, 3, 3), torch.tensor([0.0, 1.0, 1.0])
    with ops.use_backend(backend):
        got = ops.mixed_op(x, convs, weights, [1, 2])
        gated = ops.gated_branch_sum(x, convs[:2], nn.Identity())
    torch.testing.assert_close(got, ops.mixed_op(x, convs, weights, [1, 2]))
    torch.testing.assert_close(gated, convs[0](x) + convs[1](x))


def _flat(result):
    y, gin, gparams, _ = result
    return {"output": y, "input gradient": gin[0], **gparams}


def _cdnet_loss(m, inp):
    out = m(inp)
    return torch.cat([t.flatten() for t in out.logits + out.features])


@pytest.fixture(scope="module")
def tiny_cdnet():
    """A tiny CDNet (stem, 7 CBlocks incl. an r=2 layer and a depth-4 branch, FBLNeck) and its eager
    train step in fp64 (the exact answer) and fp32; shared by the backends."""
    torch.manual_seed(0)
    genotype = "cdnet:3-5-1,3-9-1,3-5-1,3-5-2,3-5-1,3-5-1"  # few interpreted launches; top2 costs 3x
    model = hwnas.create_model("cdnet", genotype=genotype, width_mult=0.25, num_classes=5).train()
    x = torch.randn(4, 3, 64, 32)
    exact = _flat(run("eager", model.double(), x.double(), forward=_cdnet_loss))
    eager = _flat(run("eager", model.float(), x, forward=_cdnet_loss))
    return model, x, exact, eager


@pytest.mark.parametrize("backend", BACKENDS)
def test_tiny_cdnet_forward_backward_matches_eager(backend, tiny_cdnet):
    """Whole-model train step. Training-mode BN over a handful of values per channel amplifies rounding,
    so the criterion is the flash-attention one: error against fp64 within 2x of eager fp32's own."""
    model, x, exact, eager = tiny_cdnet
    got = _flat(run(backend, model, x, forward=_cdnet_loss))
    assert got.keys() == exact.keys()
    for name, want in exact.items():
        err = (got[name].double() - want).abs().max().item()
        eager_err = (eager[name].double() - want).abs().max().item()
        assert err <= 2 * eager_err + 1e-5 * max(1.0, want.abs().max().item()), (name, err, eager_err)


def test_auto_prefers_triton_only_on_cuda():
    with ops.use_backend("auto") as name:
        assert (name == "triton") == torch.cuda.is_available()  # never the CPU interpreter
    assert {"eager", "batched", "triton"} <= set(ops.available_backends())


@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed "
                    "(pip install 'hwnas[triton]'): the no-GPU message is only given with triton present")
def test_triton_unavailable_says_why(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ok, why = _triton.availability()
    assert not ok and "TRITON_INTERPRET=1" in why


def test_triton_not_installed_says_how_to_install(monkeypatch):
    """A CPU-only install without the [triton] extra: the backend is unavailable and the reason names the extra."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "triton" else real(name, *a))
    ok, why = _triton.availability()
    assert not ok and "pip install 'hwnas[triton]'" in why
    assert ops.available_backends()["triton"] == (False, why)
