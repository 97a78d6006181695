"""hwnas.deploy: fused (BN-folded) CNet/CDNet inference models against the eval-mode models, on the
compiled path and in plain torch, and ONNX export of fused and unfused models checked with onnxruntime."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import hwnas
from hwnas.deploy import check_onnx_parity, export_onnx, fuse
from hwnas.errors import ExportError
from hwnas.ops._cpp import cuda_status, extension_status

HAS_EXT, WHY_NOT = extension_status()
needs_ext = pytest.mark.skipif(not HAS_EXT, reason=f"hwnas._C not built: {WHY_NOT}")
SIZE = (32, 16)  # tiny images: the backbone divides by 16 -> 2x1 final maps


def trained_like(name: str, seed: int = 0, **kw) -> torch.nn.Module:
    """A small model with non-trivial BN parameters and statistics (as after training), in eval mode.

    BN affine parameters are random; running statistics are measured on random images and then perturbed, so
    activations keep a trained network's scale (random statistics that ignore the initialised weights' scale
    make them grow to ~1e3 through the 20-odd layers).
    """
    torch.manual_seed(seed)
    model = hwnas.create_model(name, width_mult=0.25, num_classes=7, **kw)
    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d))]
    for m in bns:
        m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
        m.bias.data.copy_(torch.rand(m.num_features, generator=gen) - 0.5)
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    with torch.no_grad():
        model.train()
        for _ in range(4):
            model(torch.randn(8, 3, *SIZE, generator=gen))
    for m in bns:
        m.momentum = 0.1
        m.running_mean.add_(0.1 * (torch.rand(m.num_features, generator=gen) - 0.5))
        m.running_var.mul_(torch.rand(m.num_features, generator=gen) * 0.5 + 0.75)
    return model.eval()


def atol_for(want: torch.Tensor) -> float:
    """Float32 rounding grows with the features' magnitude: 5e-5 of the largest |feature| (at least 5e-5)."""
    return 5e-5 * max(1.0, float(want.abs().max()))


MODELS = [("cdnet", {}), ("cnet", {}), ("cdnet", {"genotype": "cdnet-top4", "neck": "bnneck"}),
          ("cnet", {"genotype": "cnet-top1", "neck": "blneck"})]


@pytest.mark.parametrize("name,kw", MODELS, ids=lambda v: v if isinstance(v, str) else "-".join(map(str, v.values())))
def test_fused_matches_eval_model(name: str, kw: dict) -> None:
    model = trained_like(name, **kw)
    backends = ["cpp", "eager"] if HAS_EXT else ["eager"]
    for batch, size in ((1, SIZE), (3, (40, 24))):  # batch 1; odd final maps (3x2)
        x = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            want = model(x)
        for backend in backends:
            fused = fuse(model, backend)
            got = fused(x)
            assert got.shape == (batch, model.num_features)
            torch.testing.assert_close(got, want, atol=atol_for(want), rtol=1e-4,
                                       msg=lambda m, b=backend: f"{b}: {m}")
    assert not any(p.requires_grad for p in fused.parameters()), "a fused model is inference-only"


@needs_ext
def test_fuse_leaves_source_model_unchanged() -> None:
    model = trained_like("cdnet").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = fuse(model, "cpp")
    assert model.training and not fused.training
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], atol=0, rtol=0)
    with pytest.raises(ExportError, match="inference-only"):
        fused.train()


def test_fuse_rejects_other_models_and_backends() -> None:
    with pytest.raises(ExportError, match="expected a CNet/CDNet ReIDModel"):
        fuse(hwnas.create_model("osnet", width_mult=0.25, num_classes=7), "eager")
    with pytest.raises(ValueError, match="unknown deploy backend"):
        fuse(trained_like("cnet"), "tensorrt")
    if not cuda_status()[0]:
        with pytest.raises(RuntimeError, match="'cuda' is not available"):
            fuse(trained_like("cnet"), "cuda")


def test_fused_rejects_bad_images() -> None:
    fused = fuse(trained_like("cnet"), "eager")
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        fused(torch.randn(1, 1, *SIZE))


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_status()[0], reason=f"CUDA path unavailable: {cuda_status()[1]}")
def test_fused_cuda_matches_eval_model() -> None:
    model = trained_like("cdnet").cuda()
    x = torch.randn(4, 3, 64, 32, device="cuda")
    with torch.no_grad():
        want = model(x)
        torch.testing.assert_close(fuse(model, "cuda")(x), want, atol=20 * atol_for(want), rtol=1e-3)


# (32, 16): stage-2 maps 2x1. Odd stage-2 heights, where FBLNeck's chunked halves differ in size: (208, 96) gives
# 13x6 maps (halves of 7 + 6 rows), (49, 16) an odd image height and 3x1 maps (2 + 1 rows).
@pytest.mark.parametrize("fused,size", [(False, SIZE), (True, SIZE), (False, (208, 96)), (True, (49, 16))],
                         ids=["unfused", "fused", "unfused-208x96", "fused-49x16"])
def test_onnx_export_parity(fused: bool, size: tuple[int, int], tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    model = trained_like("cdnet")
    path = export_onnx(model, tmp_path / "cdnet.onnx", fused=fused, image_size=size)
    assert path.exists() and not list(tmp_path.glob("*.tmp"))
    images = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(2))  # batch 2: dynamic axis
    with torch.no_grad():
        atol = atol_for(model(images))
    parity = check_onnx_parity(model, path, images, atol=atol)
    assert parity.ok, parity
    # judged against float64: eager fp32 is itself off by up to ~5e-4 here (BN folding and large features make
    # the two float32 roundings differ by more than either differs from the exact result; seen on AMD EPYC)
    from hwnas.deploy.runtimes import load_session

    got = torch.as_tensor(load_session(path, "onnxruntime", threads=None)(images)).double()
    with torch.no_grad():
        eval_model = copy.deepcopy(model).eval()
        exact = copy.deepcopy(eval_model).double()(images.double())
        fp32_error = float((eval_model(images).double() - exact).abs().max())
    onnx_error = float((got - exact).abs().max())
    assert onnx_error <= max(atol, 2 * fp32_error), (onnx_error, fp32_error, atol)
