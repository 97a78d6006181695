"""``fuse(model, backend)``: a trained CNet/CDNet as a BN-folded inference model on the compiled path."""
from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from hwnas.deploy._modules import BACKENDS, FusedCBlock, FusedConv
from hwnas.errors import ExportError, RuntimeUnavailableError, UsageError
from hwnas.models.cdnet import CDNetBackbone
from hwnas.models.reid import ReIDModel
from hwnas.ops._cpp import cuda_status, extension_status
from hwnas.space.blocks import CBlock, CDBlock, DownSample, Stem

log = logging.getLogger(__name__)


class FusedReIDModel(nn.Module):
    """Inference-only CNet/CDNet: folded stem, fused CBlocks, folded DownSamples, the original eval neck.

    ``forward(x)`` takes images (N, 3, H, W) float32 and returns the inference feature (N, D), the same
    as the eval-mode source model; activations are channels_last throughout. Holds buffers, no parameters.
    """

    def __init__(self, model: ReIDModel, backend: str) -> None:
        super().__init__()
        backbone = model.backbone
        stem = backbone.stem
        self.backend = backend
        self.model_name = model.model_name
        self.num_features = model.num_features
        self.stem = fused_stem(stem)
        self.blocks = nn.ModuleList(fused_cdblock(layer, backend) for layer in backbone.layers)
        self.downsamples = nn.ModuleList(fused_downsample(d) for d in backbone.downsamples)
        self.downsample_after = tuple(backbone.spec.downsample_after)
        self.neck = copy.deepcopy(model.neck).eval()
        for p in self.neck.parameters():
            p.requires_grad_(False)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Backbone maps ``[mid, last]`` like ``CDNetBackbone.forward``."""
        x = self.stem(x.contiguous(memory_format=torch.channels_last))
        mid = x
        for i, layer in enumerate(self.blocks):
            x = layer(x)
            if i in self.downsample_after:
                x = self.downsamples[self.downsample_after.index(i)](x)
                mid = x
        return [mid, x]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and (x.dim() != 4 or x.shape[1] != 3):
            raise UsageError(f"input of shape {tuple(x.shape)}, FusedReIDModel, expected images (N, 3, H, W)")
        with torch.no_grad():
            return self.neck(self.forward_features(x))

    def train(self, mode: bool = True) -> FusedReIDModel:
        if mode:
            raise ExportError("train mode asked of a fused model, FusedReIDModel.train, expected eval mode only (a "
                              "fused model is inference-only: BN is folded; train the source model instead)")
        return super().train(False)

    def extra_repr(self) -> str:
        return f"name={self.model_name!r}, backend={self.backend!r}"


def fused_stem(stem: Stem) -> nn.Sequential:
    """Stem with its BN folded: conv 7x7 + bias + ReLU, max-pool."""
    return nn.Sequential(FusedConv(stem[0], stem[1], relu=True), copy.deepcopy(stem[3]))


def fused_downsample(down: DownSample) -> nn.Sequential:
    """DownSample with its BN folded: 1x1 conv + bias + ReLU, average pool."""
    return nn.Sequential(FusedConv(down[0][0], down[0][1], relu=True), copy.deepcopy(down[1]))


def fused_cdblock(block: CDBlock, backend: str) -> nn.Sequential:
    """A CDBlock as its r fused CBlocks in sequence."""
    return nn.Sequential(*(FusedCBlock(b, backend) for b in block))


def fuse_module(module: nn.Module, backend: str = "cpp") -> nn.Module:
    """The BN-folded inference form of a CNet/CDNet or of one of its parts, on ``backend``.

    Takes a ``ReIDModel`` (as :func:`fuse`), a ``CDBlock``, ``CBlock``, ``Stem`` or ``DownSample``; any
    other module (a neck's inference path) is returned as an eval-mode copy without gradients. Used to time
    the parts of a network on the runtime that will run it (latency tables per runtime). Blocks on the
    compiled backends expect channels_last inputs, as inside the fused network.
    """
    if isinstance(module, ReIDModel):
        return fuse(module, backend)
    device = check_backend(backend)
    with torch.no_grad():
        if isinstance(module, CDBlock):
            out: nn.Module = fused_cdblock(module, backend)
        elif isinstance(module, CBlock):
            out = FusedCBlock(module, backend)
        elif isinstance(module, Stem):
            out = fused_stem(module)
        elif isinstance(module, DownSample):
            out = fused_downsample(module)
        else:
            out = copy.deepcopy(module)
            for p in out.parameters():
                p.requires_grad_(False)
    return out.eval().to(device)


def check_backend(backend: str) -> torch.device:
    """The device a fused model on ``backend`` runs on; raises with the reason when it cannot run here."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown deploy backend {backend!r}, backend, expected one of {', '.join(BACKENDS)}")
    if backend == "eager":
        return torch.device("cpu")
    ok, why = extension_status() if backend == "cpp" else cuda_status()
    if not ok:
        raise RuntimeUnavailableError(f"deploy backend {backend!r} is not available here ({why}), backend, "
                                      "expected 'eager' or a backend built for this machine")
    return torch.device("cuda" if backend == "cuda" else "cpu")


def fuse(model: nn.Module, backend: str = "cpp") -> FusedReIDModel:
    """Fold BN and return an inference model of a trained CNet/CDNet on ``backend``.

    backend: ``cpp`` (compiled CPU ops), ``cuda`` (compiled CUDA ops, model moved to the GPU) or ``eager``
    (folded, plain torch ops: ONNX-exportable). Uses the BN running statistics (the eval-mode model);
    the source model is not changed. Only CNet/CDNet backbones have fused blocks.
    """
    if not isinstance(model, ReIDModel) or not isinstance(model.backbone, CDNetBackbone):
        got = type(model).__name__ + (f" with a {type(model.backbone).__name__} backbone"
                                      if isinstance(model, ReIDModel) else "")
        raise ExportError(f"a {got}, hwnas.deploy.fuse, expected a CNet/CDNet ReIDModel "
                          "(hwnas.create_model('cnet'|'cdnet'))")
    device = check_backend(backend)
    with torch.no_grad():
        fused = FusedReIDModel(model, backend).eval()
    log.info("fused %s for backend %s", model.model_name, backend)
    return fused.to(device)
