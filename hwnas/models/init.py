"""Weight initialisation of the CNet/CDNet models and the search supernet, as the paper's public code does it.

The official code (GitHub solicucu/ReID, ``kaiming_init_`` of the search network and of the trained model)
re-initialises every module after construction: Conv2d weights ``kaiming_normal_`` (fan_in, ReLU gain
sqrt(2)), Conv2d biases 0; BatchNorm2d weight 1, bias 0; Linear weights N(0, std 1e-3), Linear biases 0.
PyTorch's defaults differ (uniform Conv2d/Linear weights, non-zero biases; Linear weights about 25x larger
at 512 inputs). BatchNorm1d and anything that is not one of these module types keep their defaults.
DESIGN section 2b, item 1.
"""
from __future__ import annotations

import torch
from torch import nn

LINEAR_STD = 1e-3


@torch.no_grad()
def init_weights_(module: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Initialise every Conv2d, BatchNorm2d and Linear inside ``module`` in place; returns ``module``.

    Random draws use ``generator`` when given, else torch's default generator (seed it for reproducibility).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu", generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            if m.weight is not None:
                nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=LINEAR_STD, generator=generator)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
