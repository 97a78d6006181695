"""What a command line run of hwnas sets up before its (slow) imports: a Ctrl-C while ``python -m hwnas.<cmd>``,
the ``hwnas`` script or ``python -m benchmarks.<name>`` is still importing torch, numpy or the compiled extension
ends as one during the run does (``interrupted`` on stderr, exit status 130), never with a traceback, a
half-imported module that carries on, or an abort from inside an extension's initialisation.

How: until the command's ``main`` starts (:func:`hwnas._cli.command` calls :func:`restore_interrupt`), SIGINT
does not raise ``KeyboardInterrupt`` inside whatever import is running; it prints ``interrupted`` and exits at
once (nothing of the command is open yet). Only hwnas's and the benchmarks' own commands get this: a program that
imports hwnas (``python prog.py``, ``python -m yourpkg.tool``) keeps Python's own Ctrl-C.
"""
from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

INTERRUPTED_EXIT = 130  # 128 + SIGINT, what hwnas._cli.command returns
COMMAND_PACKAGES = ("hwnas", "benchmarks")


def started_as_command(argv0: str, orig_argv: Sequence[str]) -> bool:
    """True for the ``hwnas`` console script, and while ``python -m hwnas.<cmd>`` / ``python -m benchmarks.<name>``
    imports its package (runpy sets ``sys.argv[0]`` to ``-m`` until the module runs; ``sys.orig_argv`` names the
    module)."""
    if os.path.basename(argv0) in ("hwnas", "hwnas.exe"):
        return True
    if argv0 != "-m":
        return False
    for i, arg in enumerate(orig_argv[1:], 1):
        if arg == "-m" or (arg.startswith("-m") and len(arg) > 2):
            module = arg[2:] if arg != "-m" else (orig_argv[i + 1] if i + 1 < len(orig_argv) else "")
            return module.split(".")[0] in COMMAND_PACKAGES
    return False


def _interrupted_while_starting(signum: int, frame: FrameType | None) -> None:
    os.write(2, b"interrupted\n")
    os._exit(INTERRUPTED_EXIT)


def install_quiet_interrupt() -> None:
    """For hwnas's own commands (:func:`started_as_command`), while Python's default SIGINT handler is in place:
    a Ctrl-C before the command's ``main`` prints ``interrupted`` and exits 130. Idempotent."""
    if not started_as_command(sys.argv[0] if sys.argv else "", getattr(sys, "orig_argv", ())):
        return
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _interrupted_while_starting)
    except ValueError:  # not the main thread: leave signals alone
        pass


def restore_interrupt() -> None:
    """Back to Python's ``KeyboardInterrupt`` (the command handles it, cleaning up what it started)."""
    try:
        if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:
        pass
