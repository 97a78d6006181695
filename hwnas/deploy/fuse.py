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
        self.stem = nn.Sequential(FusedConv(stem[0], stem[1], relu=True), copy.deepcopy(stem[3]))
        self.blocks = nn.ModuleList(nn.Sequential(*(FusedCBlock(b, backend) for b in layer))
                                    for layer in backbone.layers)
        self.downsamples = nn.ModuleList(
            nn.Sequential(FusedConv(d[0][0], d[0][1], relu=True), copy.deepcopy(d[1])) for d in backbone.downsamples)
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
