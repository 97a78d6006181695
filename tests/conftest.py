"""Shared pytest setup.

Without a GPU the Triton kernel tests run in Triton's CPU interpreter. Triton builds its own ``@jit``
library when it is first imported, so it is imported here, before any test module, with
``TRITON_INTERPRET=1``; the variable is then restored, so other tests see the real environment (the
kernel tests set it again while they run, see ``hwnas.ops._triton.cpu_interpreter``).
"""
from hwnas.ops import _triton

with _triton.cpu_interpreter():
    pass
