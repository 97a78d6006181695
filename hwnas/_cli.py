"""Command-line plumbing shared by every hwnas tool: one parser class, one error boundary, the same flags.

- :class:`ArgumentParser` shows every option's default in ``--help`` and reports bad options as
  ``error: <what>, <where>, expected <what>`` with exit status 2.
- :func:`command` wraps a tool's ``main(argv) -> int``: any expected failure (:class:`hwnas.errors.HwnasError`,
  an unreadable or unwritable path, a full disk, running out of memory) prints ``error: ...`` on stderr and returns
  2, never a traceback. An unexpected exception (a bug) prints one ``error: internal error ...`` line and returns 1;
  ``HWNAS_TRACEBACK=1`` shows its traceback.
- ``add_*`` give the same flag for the same thing in every tool (``--input-size HxW``, ``--output DIR``,
  ``--threads``, ``--device``, ``--seed``, ``--no-progress``), and the value types (:mod:`hwnas._argtypes`,
  re-exported here) validate values before any work starts.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import errno
import functools
import io
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from hwnas._argtypes import (  # the value types, used through this module by every tool
    INT_MAX,
    MAX_THREADS,
    PLAIN_NUMBER,
    SEED_MAX,
    clip,
    echo,
    file_value,
    finite_float,
    format_size,
    fraction,
    input_size,
    int_at_least,
    nonnegative_float,
    nonnegative_int,
    num_workers,
    path,
    positive_float,
    positive_int,
    printable,
    quote,
    same_value,
    seed,
    seed_list,
    table_ref,
    width_mult,
)
from hwnas._io import make_dirs, remove_empty_dirs
from hwnas._limits import MAX_WORKERS
from hwnas._startup import restore_interrupt
from hwnas.errors import HwnasError, OutputError, RuntimeUnavailableError, UsageError

Main = Callable[..., int]  # main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks and appends ``(default: X)`` to each option that has one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or default is None or default is False or default == argparse.SUPPRESS
                or not action.option_strings or isinstance(action, argparse._HelpAction)):
            return text
        if isinstance(default, (tuple, list)) and len(default) == 2 and action.dest == "input_size":
            shown = f"{default[0]}x{default[1]}"
        else:
            shown = "%(default)s"
        return f"{text} (default: {shown})" if text else f"(default: {shown})"


_ARGUMENT = re.compile(r"^argument (?P<opt>[^:]+): (?P<rest>.*)$", re.DOTALL)
_CHOICE = re.compile(r"^invalid choice: (?P<value>.*) \(choose from (?P<choices>.*)\)$", re.DOTALL)


def format_parser_error(prog: str, message: str) -> str:
    """argparse's message rewritten as ``<what>, <where>, expected <what>``."""
    m = _ARGUMENT.match(message)
    if m is None:
        required = re.match(r"^the following arguments are required: (.*)$", message)
        if required:
            return f"missing {required.group(1)}, {prog}, expected {required.group(1)} (see '{prog} --help')"
        one_of = re.match(r"^one of the arguments (.*) is required$", message)
        if one_of:
            return f"missing option, {prog}, expected one of {one_of.group(1)} (see '{prog} --help')"
        return f"{message}, {prog}, expected the options in '{prog} --help'"
    opt, rest = m.group("opt").split("/")[0], m.group("rest")
    choice = _CHOICE.match(rest)
    if choice:
        return f"invalid choice {choice.group('value')}, {opt}, expected one of {choice.group('choices')}"
    if ", expected " in rest:
        what, expected = rest.split(", expected ", 1)
        return f"{what}, {opt}, expected {expected}"
    ignored = re.match(r"^ignored explicit argument (.*)$", rest)
    if ignored:  # --flag=value for a flag that takes no value
        return f"unexpected value {ignored.group(1)}, {opt}, expected the flag alone (it takes no value)"
    return f"{rest}, {opt}, expected a value as in '{prog} --help'"


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with hwnas's help format and error message format (exit status 2)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        # '--thr 2' for '--threads 2' would silently change meaning when a new flag shares the prefix
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        _default_metavar(kwargs)
        return super().add_argument(*args, **kwargs)

    def add_argument_group(self, *args: Any, **kwargs: Any) -> argparse._ArgumentGroup:
        group = super().add_argument_group(*args, **kwargs)
        plain = group.add_argument

        def add_argument(*a: Any, **kw: Any) -> argparse.Action:
            _default_metavar(kw)
            return plain(*a, **kw)

        group.add_argument = add_argument  # type: ignore[method-assign]
        return group

    def _subcommands(self) -> argparse._SubParsersAction | None:
        """This parser's subcommand slot (``hwnas latency {build,...}``), None without one."""
        return next((a for a in self._actions if isinstance(a, argparse._SubParsersAction)
                     and a.dest not in (None, argparse.SUPPRESS)), None)

    def error(self, message: str) -> None:  # type: ignore[override]
        sub = self._subcommands()  # argparse names the subcommand slot by its metavar or dest: name the tool instead
        for name in () if sub is None else [n for n in (sub.metavar, sub.dest) if n]:
            if message == f"the following arguments are required: {name}":
                self.exit(2, f"error: missing subcommand, {self.prog}, expected one of {', '.join(sub.choices)} "
                             f"(see '{self.prog} --help')\n")
            message = message.replace(f"argument {name}: ", f"argument {self.prog}: ", 1)
        self.exit(2, f"error: {format_parser_error(self.prog, message)}\n")

    def parse_args(self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
                   ) -> argparse.Namespace:  # type: ignore[override]
        """As argparse's, but an unknown flag after a subcommand (``hwnas latency build --bogus``) is reported by
        that subcommand's parser, whose help lists the flags (argparse reports it at the top); and an unknown
        argument is reported before a missing required flag (``hwnas data info /data`` is an unexpected
        positional, not a missing ``--data-root``)."""
        args = sys.argv[1:] if args is None else list(args)
        required = [a for p in self._parsers() for a in p._actions if a.required and a.option_strings]
        try:  # first pass without required flags: only to find unknown arguments
            for a in required:
                a.required = False
            ns, extras = self.parse_known_args(args, copy.copy(namespace))
        finally:
            for a in required:
                a.required = True
        if extras:
            self._chosen_subparser(ns).error(f"unrecognized arguments: {' '.join(extras)}")
        ns, extras = self.parse_known_args(args, namespace)
        if extras:
            self._chosen_subparser(ns).error(f"unrecognized arguments: {' '.join(extras)}")
        return ns

    def _parsers(self) -> list[argparse.ArgumentParser]:
        """This parser and every subcommand parser under it."""
        sub = self._subcommands()
        found: list[argparse.ArgumentParser] = [self]
        for child in {id(c): c for c in (sub.choices.values() if sub else ())}.values():
            found.extend(child._parsers() if isinstance(child, ArgumentParser) else [child])
        return found

    def _chosen_subparser(self, ns: argparse.Namespace) -> argparse.ArgumentParser:
        sub = self._subcommands()
        chosen = None if sub is None else sub.choices.get(getattr(ns, sub.dest, None))
        return chosen._chosen_subparser(ns) if isinstance(chosen, ArgumentParser) else self


def _default_metavar(kwargs: dict[str, Any]) -> None:
    """Short metavars (N, X, PATH) instead of argparse's upper-cased option names."""
    if "metavar" in kwargs or "choices" in kwargs or kwargs.get("action") not in (None, "store", "append"):
        return
    kind = kwargs.get("type")
    name = getattr(kind, "__name__", "")
    if kind is int or name.startswith("int_at_least") or name == "seed":
        kwargs["metavar"] = "N"
    elif kind is float or name in ("finite_float", "nonnegative_float", "positive_float", "fraction"):
        kwargs["metavar"] = "X"
    elif kind is Path:
        kwargs["metavar"] = "PATH"


def fail(message: str) -> int:
    """Print ``error: message`` on stderr as one printable line (a newline or an escape sequence in a path or
    value is shown escaped, :func:`printable`); return exit status 2."""
    print(f"error: {printable(message)}", file=sys.stderr, flush=True)
    return 2


BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE: what a tool killed by SIGPIPE returns (``hwnas report ... | head -1``)


def _quiet_broken_pipe() -> int:
    """The reader of stdout went away (``| head``): stop quietly, as Unix tools do, and point stdout at
    /dev/null so that the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):  # not a real file (a test's capture)
        pass
    return BROKEN_PIPE_EXIT


def _os_error_message(e: OSError) -> str:
    where = e.filename if e.filename is not None else "a file"
    if e.filename2 is not None:
        where = f"{where} -> {e.filename2}"
    reason = (e.strerror or str(e)).lower()
    expected = {
        errno.ENOENT: "an existing path",
        errno.EACCES: "a path this user may read or write",
        errno.EPERM: "a path this user may read or write",
        errno.EISDIR: "a file, not a folder",
        errno.ENOTDIR: "a folder, not a file",
        errno.EEXIST: "a path that does not exist yet",
        errno.ENOSPC: "free disk space for the output",
        errno.EROFS: "a writable file system",
        errno.ENAMETOOLONG: "a shorter path",
    }.get(e.errno or -1, "a readable (input) or writable (output) path")
    return f"{reason}, {where}, expected {expected}"


def _is_out_of_memory(e: BaseException) -> bool:
    import torch

    if isinstance(e, (torch.OutOfMemoryError, MemoryError)):
        return True
    # torch's CPU allocator raises a plain RuntimeError when malloc fails
    return isinstance(e, RuntimeError) and "can't allocate memory" in str(e)


def _module_prog(main: Main) -> str:
    """The program name for messages: ``main``'s default ``prog`` (e.g. ``python -m hwnas.search``)."""
    import inspect

    param = inspect.signature(main).parameters.get("prog")
    if param is not None and isinstance(param.default, str):
        return param.default
    return "python -m " + (getattr(main, "__module__", "hwnas") or "hwnas").removesuffix(".__main__")


def tolerant_streams() -> None:
    """Text that stdout/stderr cannot encode is written as backslash escapes instead of failing: a path with
    bytes that are not valid in the file-system encoding (``\\udcff`` after Python's surrogateescape), printed
    under a strict UTF-8 or ASCII stream, would otherwise be an internal error after the work is done (or a
    "--- Logging error ---" traceback from a log line)."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", None) == "strict":
            try:
                reconfigure(errors="backslashreplace")
            except (ValueError, OSError, io.UnsupportedOperation):  # a closed or foreign stream keeps its setting
                pass


def command(main: Main) -> Main:
    """Wrap a tool's ``main(argv) -> int`` in the error boundary every hwnas command shares (see module doc).

    argparse's own exits (``--help`` -> 0, a bad option -> 2) become return values, so ``main([...])`` called from
    Python or a test returns the exit status instead of raising ``SystemExit``.
    """

    @functools.wraps(main)
    def wrapped(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
        where = prog or _module_prog(main)
        restore_interrupt()  # from here a Ctrl-C is KeyboardInterrupt, handled below (hwnas._startup before)
        tolerant_streams()
        try:
            return int((main(argv, prog=prog) if prog else main(argv)) or 0)
        except SystemExit as e:
            return e.code if isinstance(e.code, int) else (0 if e.code is None else fail(str(e.code)))
        except HwnasError as e:
            return fail(str(e))
        except BrokenPipeError:
            return _quiet_broken_pipe()
        except OSError as e:
            return fail(_os_error_message(e))
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except Exception as e:  # noqa: BLE001 (the boundary: no traceback from deep inside)
            if _is_out_of_memory(e):
                return fail(f"out of memory ({str(e).splitlines()[0] if str(e) else type(e).__name__}), {where}, "
                            "expected a smaller --batch-size or --input-size")
            if os.environ.get("HWNAS_TRACEBACK") == "1":
                traceback.print_exc()
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            print(f"error: internal error {type(e).__name__}: {first[:500]}, {where}, expected no error: please "
                  "report it (HWNAS_TRACEBACK=1 shows the traceback)", file=sys.stderr, flush=True)
            return 1

    return wrapped


# ---------------------------------------------------------------------------------------------------------------
# shared flags

def add_input_size(p: argparse.ArgumentParser, default: tuple[int, int] | None, help: str = "input size HxW in pixels",
                   **kwargs: Any) -> None:
    p.add_argument("--input-size", type=input_size, default=default, metavar="HxW", help=help, **kwargs)


def add_output(p: argparse.ArgumentParser, help: str, default: str | None = None) -> None:
    p.add_argument("--output", type=path, default=None if default is None else Path(default), metavar="DIR",
                   help=help)


def add_threads(p: argparse.ArgumentParser, default: int | None = None, help: str | None = None) -> None:
    p.add_argument("--threads", type=int_at_least(1, MAX_THREADS), default=default, metavar="N",
                   help=help or "torch intra-op CPU threads (default: torch's choice; 1 is steadiest on a busy machine)")


def add_device(p: argparse.ArgumentParser, default: str = "auto") -> None:
    p.add_argument("--device", default=default, metavar="DEV",
                   help="auto (cuda if available, else cpu), cpu, cuda or cuda:N")


def add_seed(p: argparse.ArgumentParser, default: int = 0) -> None:
    p.add_argument("--seed", type=seed, default=default, metavar="N", help="random seed")


def add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs still report progress)")


def given_options(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> dict[str, str]:
    """The options typed on the command line (not left at their defaults): ``{dest: flag}``.

    Config files sit between the defaults and the flags, so a command must know which flags were given.
    ``argv`` parsed again with every default suppressed leaves exactly those.
    """
    saved = [(action, action.default) for action in parser._actions]
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        ns = parser.parse_intermixed_args(list(sys.argv[1:] if argv is None else argv))
    finally:
        for action, default in saved:
            action.default = default
    flags = {a.dest: next((o for o in a.option_strings if o.startswith("--")), a.dest) for a in parser._actions}
    return {dest: flags.get(dest, dest) for dest in vars(ns)}


def add_config(p: argparse.ArgumentParser, sections: str) -> None:
    """``--config FILE.yaml`` and the positional ``KEY=VALUE`` overrides (see hwnas/_config.py)."""
    p.add_argument("--config", type=path, metavar="FILE.yaml",
                   help=f"run config in YAML (sections: {sections}); flags given on the command line override it, "
                        "and KEY=VALUE overrides override both")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides with dotted keys, e.g. train.lr=0.01 (put them after the options)")


@contextlib.contextmanager
def options_named(config_class: str, aliases: dict[str, str] | None = None) -> Iterator[None]:
    """Re-raise a ``UsageError`` about ``<config_class>.<field>`` as one about the flag ``--<field>``.

    Config dataclasses validate themselves and name their fields; on the command line the user typed flags.
    ``aliases`` maps fields to flags whose names differ (``{"image_size": "--input-size"}``).
    """
    try:
        yield
    except UsageError as e:
        aliases = aliases or {}
        text = re.sub(rf"\b{re.escape(config_class)}\.(\w+)",
                      lambda m: aliases.get(m.group(1), "--" + m.group(1).replace("_", "-")), str(e))
        raise UsageError(text) from None


def resolve_device(text: str, option: str = "--device") -> torch.device:  # noqa: F821
    """``auto|cpu|cuda|cuda:N`` -> ``torch.device``; a CUDA device that is not there is a clear error."""
    import torch

    name = text
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"unknown device {text!r}, {option}, expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeUnavailableError(
                f"CUDA is not available (torch {torch.__version__}, no CUDA device or a CPU-only build), "
                f"{option} {text}, expected a machine with a CUDA GPU or --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise RuntimeUnavailableError(f"no CUDA device {device.index} ({torch.cuda.device_count()} present), "
                                          f"{option} {text}, expected cuda:0..cuda:{torch.cuda.device_count() - 1}")
    elif name != "cpu":  # not cpu:0, CPU, ' cpu': one spelling per device
        raise UsageError(f"unsupported device {text!r}, {option}, expected auto, cpu, cuda or cuda:N")
    return device


def apply_threads(threads: int | None) -> None:
    """``torch.set_num_threads`` when given (validated >= 1 by the parser)."""
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def _check_utf8_path(path: Path, option: str, kind: str) -> None:
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        raise OutputError(f"output path is not valid UTF-8 ({os.fsencode(path)!r}), {option}, expected a UTF-8 {kind} "
                          "name (reports and result files name it)") from None


def check_output_file(path: Path, option: str = "--output") -> Path:
    """An output file whose whole path is valid UTF-8 and whose folder passes :func:`check_output_dir` (a folder at
    ``path`` itself is the caller's to refuse, with the file name it expects)."""
    _check_utf8_path(path, option, "file")
    check_output_dir(path.parent if str(path.parent) else Path("."), option)
    return path


def check_output_dir(path: Path, option: str = "--output") -> Path:
    """An output folder that is not an existing file, whose name is valid UTF-8 (reports name it) and whose nearest
    existing parent is writable."""
    _check_utf8_path(path, option, "folder")
    if os.path.lexists(path) and not path.exists():
        raise OutputError(f"output path is a broken or looping symbolic link, {option} {path}, expected a folder "
                          "or a path that does not exist")
    if path.exists() and not path.is_dir():
        raise OutputError(f"output path is a file, {option} {path}, expected a folder (or a path that does not exist)")
    parent = path
    while not parent.exists():
        if os.path.lexists(parent):  # a broken or looping symbolic link on the way: mkdir would fail after the work
            raise OutputError(f"a broken or looping symbolic link in the path, {option} {path} (at {parent}), "
                              "expected a path whose folders exist or can be created")
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"a file is in the way, {option} {path} (at {parent}), expected a path whose existing parts "
                          "are folders")
    if not os.access(parent, os.W_OK | os.X_OK) or not _can_create_in(parent):
        raise OutputError(f"folder is not writable, {option} {path} (at {parent}), expected a writable location")
    return path


def _can_create_in(folder: Path) -> bool:
    """Whether a file can really be created in ``folder``: ``os.access`` says yes to root on read-only mounts and on
    pseudo file systems (/proc, /sys), where the write would fail only after the work. Probes with a hidden
    temporary file, removed at once."""
    import tempfile

    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".hwnas-probe-")
    except OSError:
        return False
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return True


def make_output_dir(path: Path, option: str = "--output") -> Path:
    """:func:`check_output_dir`, then create the folder now (before hours of work) with errors naming ``option``."""
    _make_output_dir(path, option)
    return path


def _make_output_dir(path: Path, option: str) -> list[Path]:
    check_output_dir(path, option)
    try:
        return make_dirs(path)
    except OSError as e:
        raise OutputError(f"cannot create the folder ({(e.strerror or str(e)).lower()}), {option} {path}, expected a folder "
                          "this user may create") from None


@contextlib.contextmanager
def output_dir_for(path: Path, option: str = "--output") -> Iterator[Path]:
    """:func:`make_output_dir` for the ``with`` block; the folders it created are removed again when the block
    fails and leaves them empty (a failed export leaves no empty folder behind)."""
    made = _make_output_dir(path, option)
    try:
        yield path
    except BaseException:
        remove_empty_dirs(made)
        raise


__all__ = [
    "INT_MAX",
    "SEED_MAX",
    "MAX_THREADS",
    "MAX_WORKERS",
    "PLAIN_NUMBER",
    "ArgumentParser",
    "HelpFormatter",
    "add_config",
    "add_device",
    "add_input_size",
    "add_output",
    "add_progress",
    "add_seed",
    "add_threads",
    "apply_threads",
    "check_output_dir",
    "check_output_file",
    "clip",
    "command",
    "echo",
    "fail",
    "file_value",
    "finite_float",
    "format_parser_error",
    "format_size",
    "fraction",
    "given_options",
    "input_size",
    "int_at_least",
    "make_output_dir",
    "nonnegative_float",
    "nonnegative_int",
    "num_workers",
    "options_named",
    "path",
    "positive_float",
    "positive_int",
    "printable",
    "quote",
    "resolve_device",
    "same_value",
    "seed",
    "seed_list",
    "table_ref",
    "width_mult",
]
