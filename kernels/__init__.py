"""Fused Triton kernels of hwnas (installed as ``hwnas.kernels``); see docs/kernels.md.

Importing this package registers the ``hwnas::`` torch.library custom ops (``lite_conv``,
``lite_conv_folded``, ``branch_pool``, ``gated_sum`` and their backwards). Use them through
:mod:`hwnas.ops` (backend ``triton``) rather than directly.
"""
from . import gate_sum, lite_conv

__all__ = ["gate_sum", "lite_conv"]
