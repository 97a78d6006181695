"""Shared pytest setup.

Without a GPU the Triton kernel tests run in Triton's CPU interpreter. Triton builds its own ``@jit``
library when it is first imported, so it is imported here, before any test module, with
``TRITON_INTERPRET=1``; the variable is then restored, so other tests see the real environment (the
kernel tests set it again while they run, see ``hwnas.ops._triton.cpu_interpreter``).
"""
import pytest
import torch

from hwnas.ops import _triton

with _triton.cpu_interpreter():
    pass


@pytest.fixture(scope="module")
def triton_cpu():
    """Without a GPU: Triton's interpreter, and one intra-op thread (tiny shapes only spin on a shared 2-core
    machine, 20-50x slower). Both restored after the module, so other tests see the real environment."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    with _triton.cpu_interpreter():
        yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _user_data_in_tmp(tmp_path_factory, monkeypatch):
    """User data (latency tables written without --output) goes to a temporary HWNAS_HOME, never the real home."""
    monkeypatch.setenv("HWNAS_HOME", str(tmp_path_factory.mktemp("hwnas-home")))


@pytest.fixture
def one_thread():
    """One torch thread for the test (tiny convolutions: OpenMP threads cost far more than they save, above all on
    a shared CPU); the previous count is restored after it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
