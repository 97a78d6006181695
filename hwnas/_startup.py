"""What a command line run of hwnas sets up before its (slow) imports: a Ctrl-C while ``python -m hwnas.<cmd>``,
the ``hwnas`` script or ``python -m benchmarks.<name>`` is still importing torch ends as one during the run does
(``interrupted`` on stderr, exit status 130, no traceback from inside an import). A program that imports hwnas
keeps Python's own behaviour."""
from __future__ import annotations

import os
import sys
from types import TracebackType

INTERRUPTED_EXIT = 130  # 128 + SIGINT, what hwnas._cli.command returns


def started_from_command_line(argv0: str) -> bool:
    """True while ``python -m <package>.<module>`` imports its package (runpy sets ``sys.argv[0]`` to ``-m``
    until the module runs), and for the ``hwnas`` console script."""
    return argv0 == "-m" or os.path.basename(argv0) in ("hwnas", "hwnas.exe")


def install_quiet_interrupt() -> None:
    """On the command line, an uncaught ``KeyboardInterrupt`` (only possible before a command's ``main`` runs:
    hwnas._cli.command handles it there) prints ``interrupted`` and exits 130; any other uncaught exception goes
    to the hook that was installed before. Idempotent."""
    if not started_from_command_line(sys.argv[0] if sys.argv else "") or \
            getattr(sys.excepthook, "_hwnas_quiet_interrupt", False):
        return
    previous = sys.excepthook

    def hook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            try:
                sys.stdout.flush()
                print("interrupted", file=sys.stderr, flush=True)
            finally:
                os._exit(INTERRUPTED_EXIT)  # a hook cannot raise SystemExit; nothing of hwnas is open yet
        previous(kind, value, tb)

    hook._hwnas_quiet_interrupt = True  # type: ignore[attr-defined]
    sys.excepthook = hook
