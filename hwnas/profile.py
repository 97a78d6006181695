"""FLOPs and parameter counts in the paper's convention, on top of fvcore's JIT analysis.

Convention (DESIGN section 4): FLOPs are the multiply-accumulates of Conv and Linear layers, eval mode,
batch 1 (exactly fvcore's conv/linear handles; BN, pooling and activations count zero). Parameters are
those of the inference path (``model.inference_modules()``), or of the whole model with ``params_scope='total'``.
``scope='backbone'`` counts the backbone alone (stem to last layer, the seed's Table 3 for CDNet);
``scope='inference'`` counts what the eval-mode forward runs (backbone + the neck's inference path).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from fvcore.nn.jit_analysis import JitModelAnalysis
from fvcore.nn.jit_handles import addmm_flop_jit, bmm_flop_jit, conv_flop_jit, linear_flop_jit, matmul_flop_jit
from torch import nn

from hwnas import ops
from hwnas._modes import eval_mode
from hwnas.errors import UsageError

SCOPES: tuple[str, ...] = ("backbone", "inference")
PARAM_SCOPES: tuple[str, ...] = ("inference", "total")

# op name -> fvcore handle; custom ops of fused backends register theirs with register_flop_handle
_MAC_HANDLES: dict[str, Callable] = {
    "aten::_convolution": conv_flop_jit,
    "aten::addmm": addmm_flop_jit,
    "aten::linear": linear_flop_jit,
    "aten::matmul": matmul_flop_jit,
    "aten::bmm": bmm_flop_jit,
}
# ops that carry no multiply-accumulates in the paper's convention (silenced, not counted)
_ZERO_OPS: tuple[str, ...] = (
    "aten::batch_norm", "aten::adaptive_avg_pool2d", "aten::max_pool2d", "aten::avg_pool2d", "aten::mean",
    "aten::sigmoid", "aten::relu", "aten::relu_", "aten::add", "aten::add_", "aten::mul", "aten::cat",
    "aten::dropout", "aten::flatten", "aten::chunk", "aten::split", "aten::sum", "aten::stack",
)


def register_flop_handle(op_name: str, handle: Callable) -> None:
    """Count a custom op (e.g. ``hwnas::lite_conv``) with an fvcore-style handle ``(inputs, outputs) -> MACs``."""
    _MAC_HANDLES[op_name] = handle


class MacCountAnalysis(JitModelAnalysis):
    """fvcore analysis that counts only Conv/Linear multiply-accumulates."""

    def __init__(self, model: nn.Module, inputs: torch.Tensor | tuple[torch.Tensor, ...]) -> None:
        super().__init__(model=model, inputs=inputs)
        self.set_op_handle(**_MAC_HANDLES)
        self.set_op_handle(**{name: None for name in _ZERO_OPS})
        self.unsupported_ops_warnings(False)
        self.uncalled_modules_warnings(False)


@dataclass(frozen=True)
class Profile:
    """Counts of one model at one input size. ``per_layer``: (module name, MFLOPs) in module order."""

    params_m: float
    flops_m: float
    scope: str
    params_scope: str
    input_size: tuple[int, int]
    per_layer: tuple[tuple[str, float], ...]


def count_params(modules: Iterable[nn.Module]) -> int:
    """Number of distinct parameters in ``modules`` (shared modules counted once)."""
    seen: dict[int, int] = {}
    for module in modules:
        for p in module.parameters():
            seen[id(p)] = p.numel()
    return sum(seen.values())


class _Scoped(nn.Module):
    """Runs the backbone alone, or the eval-mode forward, so fvcore traces exactly that scope."""

    def __init__(self, model: nn.Module, scope: str) -> None:
        super().__init__()
        self.model, self.scope = model, scope

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        return self.model.backbone(x) if self.scope == "backbone" else self.model(x)


def _breakdown(analysis: MacCountAnalysis, model: nn.Module) -> tuple[tuple[str, float], ...]:
    by_module = analysis.by_module()
    rows = []
    for part in ("backbone", "neck"):
        for name, child in getattr(model, part).named_children():
            children = list(child.named_children()) if isinstance(child, nn.ModuleList) else [("", child)]
            for sub, _ in children:
                key = ".".join(p for p in ("model", part, name, sub) if p)
                if by_module.get(key, 0):
                    rows.append((key.removeprefix("model."), by_module[key] / 1e6))
    return tuple(rows)


def profile_model(model: nn.Module, input_size: tuple[int, int] = (256, 128), scope: str = "inference",
                  params_scope: str = "inference") -> Profile:
    """Params (M) and FLOPs (M, conv+linear MACs at batch 1, eval mode) of a ReIDModel.

    The model is traced in eval mode; afterwards every submodule has its own train/eval mode back.
    Raises :class:`hwnas.errors.UsageError` for an unknown ``scope`` / ``params_scope``.
    """
    if scope not in SCOPES:
        raise UsageError(f"unknown scope {scope!r}, profile_model, expected one of {', '.join(SCOPES)}")
    if params_scope not in PARAM_SCOPES:
        raise UsageError(f"unknown params_scope {params_scope!r}, profile_model, expected one of "
                         f"{', '.join(PARAM_SCOPES)}")
    with eval_mode(model):
        device = next(model.parameters()).device
        x = torch.zeros(1, 3, *input_size, device=device)
        with torch.no_grad(), ops.use_backend("eager"):
            analysis = MacCountAnalysis(_Scoped(model, scope), (x,))
            flops = analysis.total()
            per_layer = _breakdown(analysis, model)
    if params_scope == "total":
        params = count_params([model])
    else:
        params = count_params(model.inference_modules())
    logging.getLogger(__name__).debug("profiled %s at %s: %.1f MFLOPs", type(model).__name__, input_size, flops / 1e6)
    return Profile(params / 1e6, flops / 1e6, scope, params_scope, tuple(input_size), per_layer)
