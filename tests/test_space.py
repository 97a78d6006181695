"""The search space's building blocks and candidate lists match DESIGN section 1."""
import pytest
import torch

from hwnas.space import CDNET_CANDIDATES, CNET_CANDIDATES, CBlock, CDBlock, LiteConv, scaled_planes
from hwnas.space.blocks import Branch, ChannelGate
from hwnas.space.macro import macro_spec


def test_candidate_order():
    assert [(c.k1, c.k2) for c in CNET_CANDIDATES] == [(3, 5), (3, 7), (5, 7), (3, 9), (5, 9), (7, 9)]
    assert [(c.k1, c.k2, c.r) for c in CDNET_CANDIDATES] == [
        (3, 5, 1), (3, 7, 1), (5, 7, 1), (3, 5, 2), (3, 7, 2), (5, 7, 2),
        (3, 9, 1), (5, 9, 1), (7, 9, 1), (3, 9, 2), (5, 9, 2), (7, 9, 2)]


@pytest.mark.parametrize("beta,planes", [(1.0, [64, 256, 384, 512]), (0.75, [48, 192, 288, 384]),
                                         (0.5, [32, 128, 192, 256]), (0.25, [16, 64, 96, 128]), (0.3, [16, 76, 112, 152])])
def test_scaled_planes(beta, planes):
    assert scaled_planes(beta) == planes


def test_macro_layers():
    spec = macro_spec(1.0)
    assert [(ls.in_channels, ls.out_channels, ls.stride) for ls in spec.layers] == [
        (64, 256, 4), (256, 256, 4), (256, 384, 8), (384, 384, 8), (384, 512, 16), (512, 512, 16)]
    assert spec.layers[4].input_size((256, 128)) == (16, 8)


def test_liteconv_structure():
    m = LiteConv(16)
    assert m.pointwise.kernel_size == (1, 1) and m.pointwise.bias is None
    assert m.depthwise.groups == 16 and m.depthwise.kernel_size == (3, 3) and m.depthwise.bias is None


@pytest.mark.parametrize("k,depth", [(3, 1), (5, 2), (7, 3), (9, 4)])
def test_branch_depth(k, depth):
    assert len(Branch(8, k)) == depth


def test_branch_rejects_bad_kernel():
    with pytest.raises(ValueError, match="3, 5, 7 or 9"):
        Branch(8, 4)


def test_cblock_shapes_and_parts():
    block = CBlock(32, 64, 3, 9)
    assert block.mid_channels == 16
    assert block.gate.fc1.out_channels == 4 and block.gate.fc1.bias is not None
    assert [len(b) for b in block.branches] == [1, 4]
    assert not isinstance(block.shortcut, torch.nn.Identity)
    assert isinstance(CBlock(64, 64, 3, 5).shortcut, torch.nn.Identity)
    y = block(torch.randn(2, 32, 7, 3))
    assert y.shape == (2, 64, 7, 3) and (y >= 0).all()


def test_cblock_is_gate_of_each_branch_summed():
    torch.manual_seed(0)
    block = CBlock(16, 16, 3, 5).eval()
    x = torch.randn(1, 16, 5, 5)
    s = block.squeeze(x)
    mixed = block.gate(block.branches[0](s)) + block.gate(block.branches[1](s))
    ref = torch.relu(block.restore(mixed) + x)
    torch.testing.assert_close(block(x), ref)


def test_gate_is_shared():
    block = CBlock(16, 16, 3, 5)
    assert sum(isinstance(m, ChannelGate) for m in block.modules()) == 1


def test_cdblock_repeat():
    assert len(CDBlock(32, 64, 3, 5, 2)) == 2
    assert CDBlock(32, 64, 3, 5, 2)[1].in_channels == 64
    with pytest.raises(ValueError, match="r"):
        CDBlock(32, 64, 3, 5, 3)
