"""Check, without running them, that the commands of ``benchmarks/gpu_suite.sh`` still exist and parse.

    python -m benchmarks._suite_check COMMANDS_FILE      # one shell command per line; '#' lines are skipped

Used by ``gpu_suite.sh --dry-run`` so the suite cannot rot silently when a CLI is renamed or loses a flag.
For each line:

- ``PY -m pytest ARGS``: collected in a subprocess (``--collect-only --strict-markers``): the test files
  and markers exist and the modules import. Zero selected tests is an error.
- ``PY -m MODULE ARGS`` / ``PY FILE.py ARGS``: the module is imported and run as ``__main__`` with ARGS,
  up to its argument parser: the outermost ``ArgumentParser.parse_args``/``parse_known_args`` call parses
  ARGS for real (unknown flags, bad choices and bad values fail as they would on the device) and then stops
  the program before it does any work. A flag that parses only as an abbreviation of a longer option
  (``--out`` after ``--output`` replaced it) fails too: its meaning may have changed with its name.
- anything else (``bash``, ``nvidia-smi``...): the program must be on PATH or a file; missing ones are
  reported as warnings (the device has tools this machine lacks).

Prints one line per command (``ok``, ``FAIL`` or ``warn``) and exits 1 if any command failed.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Sequence


class _Parsed(BaseException):
    """Raised after the program's arguments parsed: stops it before any work (BaseException: not caught by
    the CLIs' ``except Exception`` boundaries)."""


@contextlib.contextmanager
def _stop_after_parsing(parsers: list[argparse.ArgumentParser]) -> Iterator[None]:
    """Within the block, the outermost parse stops the program; every parser that parsed is appended to
    ``parsers`` (the outer one and its subcommand's)."""
    import hwnas._cli  # noqa: F401 (its ArgumentParser overrides parse_args: wrapped too, so it finishes its checks)

    classes = [argparse.ArgumentParser, *_subclasses(argparse.ArgumentParser)]
    originals = {(cls, name): cls.__dict__[name] for cls in classes for name in ("parse_args", "parse_known_args")
                 if name in cls.__dict__}
    depth = 0

    def wrap(key):
        def parse(self, *args, **kwargs):
            nonlocal depth
            parsers.append(self)
            depth += 1
            try:
                result = originals[key](self, *args, **kwargs)
            finally:
                depth -= 1
            if depth == 0:  # the outermost call: subparsers (and an override's own checks) run inside it
                raise _Parsed()
            return result
        return parse

    for cls, name in originals:
        setattr(cls, name, wrap((cls, name)))
    try:
        yield
    finally:
        for (cls, name), fn in originals.items():
            setattr(cls, name, fn)


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def _python_args(tokens: Sequence[str]) -> tuple[str, str, list[str]] | None:
    """('module'|'path', target, args) for a python command line, None otherwise."""
    if not tokens or not Path(tokens[0]).name.startswith("python"):
        return None
    rest = [t for t in tokens[1:] if t not in ("-u", "-B")]
    if len(rest) >= 2 and rest[0] == "-m":
        return "module", rest[1], rest[2:]
    if rest and rest[0].endswith(".py"):
        return "path", rest[0], rest[1:]
    return None


def _abbreviated(args: list[str], parsers: list[argparse.ArgumentParser]) -> list[str]:
    """Flags of ``args`` that no parser defines as written: argparse accepted them as prefixes of a longer
    option (``--out`` for ``--output``), which hides a renamed flag whose meaning may have changed."""
    known = {opt for p in parsers for opt in p._option_string_actions}
    flags = [a.split("=", 1)[0] for a in args if a.startswith("--") and a != "--"]
    return [f for f in flags if f not in known]


def check_cli(kind: str, target: str, args: list[str]) -> tuple[bool, str]:
    """Import ``target`` and parse ``args`` with its own parser, stopping before it runs."""
    argv0 = target if kind == "path" else f"{target}.__main__"
    saved_argv, out, err = sys.argv, io.StringIO(), io.StringIO()
    sys.argv = [argv0, *args]
    parsers: list[argparse.ArgumentParser] = []
    try:
        with _stop_after_parsing(parsers), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if kind == "module":
                runpy.run_module(target, run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(target, run_name="__main__")
    except _Parsed:
        short = _abbreviated(args, parsers)
        if short:
            return False, (f"{', '.join(short)}: not an option as written (argparse took it as an abbreviation of a "
                           "longer one); write the option in full")
        return True, "arguments parse"
    except SystemExit as e:
        tail = (err.getvalue() or out.getvalue()).strip().splitlines()[-1:] or [f"exit {e.code}"]
        return False, f"exited while parsing its arguments: {tail[0]}"
    except Exception as e:  # noqa: BLE001 (an import failure is what this check is for)
        return False, f"{type(e).__name__}: {e}"
    finally:
        sys.argv = saved_argv
    return False, "ran to the end without parsing arguments (no argparse parser?)"


def check_pytest(python: str, args: list[str]) -> tuple[bool, str]:
    """Collect (not run) the tests the suite would run; errors and an empty selection fail."""
    keep = [a for a in args if a not in ("-x", "-q") and not a.startswith("--junitxml")]
    cmd = [python, "-m", "pytest", "--collect-only", "-q", "--strict-markers", "-p", "no:cacheprovider", *keep]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    text = proc.stdout + proc.stderr
    counts = re.findall(r"^(\d+)(?:/\d+)? tests? collected.*$", text, flags=re.M)
    summary = re.findall(r"^\d+(?:/\d+)? tests? collected.*$|^no tests collected.*$", text, flags=re.M)
    detail = summary[-1] if summary else (text.strip().splitlines() or ["no output"])[-1]
    if proc.returncode != 0:
        return False, f"collection failed ({detail})"
    if not counts or int(counts[-1]) == 0:
        return False, f"no test selected ({detail})"
    return True, detail


def _drop_xdist(args: list[str]) -> list[str]:
    """Without the ``-n N`` pair (collection in one process is enough)."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "-n":
            skip = True
        elif not (a.startswith("-n") and a[2:].isdigit()):
            out.append(a)
    return out


def check_command(line: str) -> tuple[str, str]:
    """(``ok``|``FAIL``|``warn``, detail) for one command line."""
    tokens = shlex.split(line)
    parsed = _python_args(tokens)
    if parsed is None:
        prog = tokens[0] if tokens else ""
        found = shutil.which(prog) or (os.path.isfile(prog) and prog)
        return ("ok", f"{prog} found") if found else ("warn", f"{prog} is not on PATH here")
    kind, target, args = parsed
    if kind == "module" and target == "pytest":
        ok, detail = check_pytest(tokens[0], _drop_xdist(args))
    else:
        if kind == "path" and not Path(target).is_file():
            return "FAIL", f"{target} does not exist"
        ok, detail = check_cli(kind, target, args)
    return ("ok" if ok else "FAIL"), detail


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks._suite_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("commands", type=Path, help="file with one command per line")
    args = p.parse_args(argv)
    lines = [ln.strip() for ln in args.commands.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    failed = 0
    for line in lines:
        status, detail = check_command(line)
        failed += status == "FAIL"
        print(f"{status:<4}  {line}\n      {detail}", flush=True)
    print(f"checked {len(lines)} commands: {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
