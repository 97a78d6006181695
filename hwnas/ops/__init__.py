"""One dispatch layer for the compute-heavy parts of the CNet/CDNet blocks.

Models and the supernet call the functions here; a backend (``eager`` is the reference, fused
backends register themselves) supplies the implementation. Choose globally with
:func:`set_backend` or for a block of code with ``with use_backend(name):``. Blocks describe their
computation to the backends with plans (:mod:`hwnas.ops.plan`); this package never imports the model
classes (``hwnas.space``), which import it.
"""
from __future__ import annotations

from hwnas.ops._dispatch import (
    Backend,
    available_backends,
    get_backend,
    register_backend,
    set_backend,
    use_backend,
)
from hwnas.ops import plan
from hwnas.ops.functional import gated_branch_sum, mixed_op
from hwnas.ops import _cpp  # noqa: F401,E402  (registers the compiled 'cpp' backend, issue 7)

__all__ = [
    "Backend",
    "available_backends",
    "gated_branch_sum",
    "get_backend",
    "mixed_op",
    "plan",
    "register_backend",
    "set_backend",
    "use_backend",
]
