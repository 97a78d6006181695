"""The GDAS ReID baseline (seed Table 5): structure, counts in the paper's convention, outputs."""
from __future__ import annotations

import pytest
import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn

import hwnas
from hwnas.models.gdas import GDAS_REID_GENOTYPE, Cell, CellGenotype, GDASBackbone, _sep_conv, authors_param_count


def _conv_linear_mflops(module: nn.Module, x: torch.Tensor) -> float:
    """fvcore's conv + linear MACs (DESIGN section 4), in millions."""
    analysis = FlopCountAnalysis(module, (x,))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return sum(v for k, v in analysis.by_operator().items() if k in ("conv", "linear", "addmm")) / 1e6


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    return hwnas.create_model("gdas").eval()


def test_registered() -> None:
    assert "gdas" in hwnas.list_models()
    with pytest.raises(ValueError, match="gdas neck"):
        hwnas.create_model("gdas", neck="nope")


def test_table5_counts(model: nn.Module) -> None:
    """Table 5: 1109.2 MFLOPs exactly; 4.0M params as the authors count (inference path + unused conv1x1)."""
    mflops = _conv_linear_mflops(model, torch.zeros(1, 3, 256, 128))
    assert f"{mflops:.1f}" == "1109.2"
    inference = sum(p.numel() for m in model.inference_modules() for p in m.parameters())
    assert f"{inference / 1e6:.2f}" == "2.98"
    assert authors_param_count(model) - inference == 1024 * 1024 + 2 * 1024
    assert f"{authors_param_count(model) / 1e6:.1f}" == "4.0"
    cdnet = hwnas.create_model("cdnet")
    assert authors_param_count(cdnet) == sum(p.numel() for m in cdnet.inference_modules() for p in m.parameters())


def test_stem_flops_by_hand() -> None:
    backbone = GDASBackbone().eval()
    x = torch.zeros(1, 3, 256, 128)
    by_hand = 3 * 32 * 9 * 128 * 64 + 32 * 64 * 9 * 128 * 64 + 64 * 64 * 9 * 64 * 32
    assert _conv_linear_mflops(nn.Sequential(backbone.stem0, backbone.stem1), x) * 1e6 == pytest.approx(by_hand)


def test_sep_conv_flops_by_hand() -> None:
    c, k, h, w = 8, 5, 12, 6
    op = _sep_conv(c, k, stride=2).eval()
    out_hw = (h // 2) * (w // 2)
    by_hand = 2 * (c * k * k * out_hw + c * c * out_hw)
    assert _conv_linear_mflops(op, torch.zeros(1, c, h, w)) * 1e6 == pytest.approx(by_hand)


def test_cell_structure() -> None:
    backbone = GDASBackbone()
    assert [cell.out_channels for cell in backbone.cells] == [256, 256, 512, 512, 1024, 1024]
    assert backbone.feature_channels == (1024, 1024)
    # the reduction cell 2 turns its input-reading skip_connect (edge 2) into a stride-2 FactorizedReduce
    assert type(backbone.cells[2].ops[2]).__name__ == "FactorizedReduce"
    assert isinstance(backbone.cells[3].ops[6], nn.Identity)
    with pytest.raises(ValueError, match="unknown GDAS op"):
        Cell(CellGenotype((("conv_9x9", 0),) * 8), 8, 8, 8, False, False)
    assert len(GDAS_REID_GENOTYPE) == 6 and all(len(g.edges) == 8 for g in GDAS_REID_GENOTYPE)


@pytest.mark.parametrize("size", [(256, 128), (64, 32), (50, 30)])
def test_eval_output(model: nn.Module, size: tuple[int, int]) -> None:
    with torch.no_grad():
        feats = model.backbone(torch.randn(1, 3, *size))
        out = model(torch.randn(2, 3, *size))
    h, w = -(-size[0] // 16), -(-size[1] // 16)
    assert [tuple(f.shape[1:]) for f in feats] == [(1024, h, w), (1024, h, w)]
    assert out.shape == (2, model.num_features) and model.num_features == 1280
    assert torch.isfinite(out).all()


def test_train_output_and_grads() -> None:
    torch.manual_seed(0)
    model = hwnas.create_model("gdas", num_classes=5).train()
    out = model(torch.randn(2, 3, 64, 32))
    assert [tuple(t.shape) for t in out.logits] == [(2, 5), (2, 5)]
    assert [tuple(t.shape) for t in out.features] == [(2, 1024), (2, 256)]
    sum(t.sum() for t in out.logits).backward()
    assert model.backbone.stem0[0].weight.grad is not None
    assert model.backbone.stem0[0].weight.grad.abs().sum() > 0
