"""Entry point of the `dse` command: the command modules register their commands on `dse.cli_app.app`. `main`
imports only the module of the command being run (`dse run` does not pay for the other commands'
dependencies: rich tables, JSON schemas, ...), every module for `dse --help`, completion or an unknown
command; `from dse.cli import app` gets the app with every command. User errors map to one message and exit
status 2."""

from __future__ import annotations

import atexit
import errno
import gc
import importlib
import os
import sys
from typing import Any

from dse.errors import DseUserError

#: command module of dse/commands/ -> the commands it registers, in the order `dse --help` lists them
#: (tests/test_cli.py checks this against what the modules register)
COMMANDS: dict[str, tuple[str, ...]] = {
    "hardware": ("catalog", "describe", "schema", "knobs"),
    "perf": ("evaluate", "roofline", "software"),
    "compare": ("compare",),
    "study": ("run", "pareto", "export"),
    "report": ("dashboard",),
    "validate": ("validate", "calibrate"),
    "workloads": ("models", "scenarios", "mixes"),
    "uncertainty": ("sensitivity",),
}


def load_commands(modules: tuple[str, ...] | list[str] | None = None) -> Any:
    """Import the command modules (default: all, in help order) and return the typer app they registered on."""
    from dse.cli_app import app

    for m in COMMANDS if modules is None else modules:
        importlib.import_module(f"dse.commands.{m}")
    return app


def modules_for(argv: list[str]) -> list[str] | None:
    """The command modules a command line needs: the one module of its command, or None (all of them) for
    anything else (no command, a root option such as --help, shell completion, an unknown command)."""
    if len(argv) < 2 or any(k.endswith("_COMPLETE") and k.startswith("_") for k in os.environ):
        return None
    return next(([m] for m, names in COMMANDS.items() if argv[1] in names), None)


def __getattr__(name: str) -> Any:
    if name == "app":  # `from dse.cli import app` (tests, scripts): every command registered
        return load_commands()
    raise AttributeError(f"module 'dse.cli' has no attribute {name!r}")


__all__ = ["app", "main"]


# what the user can do about an operating-system error on a path they gave (errno -> advice)
_OS_ADVICE = {
    errno.EISDIR: "is a folder; give a file path",
    errno.ENOTDIR: "a part of this path is a file, not a folder; give another path",
    errno.ENOENT: "does not exist; check the path",
    errno.EACCES: "permission denied; give a path you may read/write",
    errno.EPERM: "not permitted; give a path you may read/write",
    errno.ENOSPC: "no space left on the device; free some space and rerun (a run resumes where it stopped)",
    errno.EROFS: "is on a read-only file system; give another path",
    errno.ENAMETOOLONG: "the name is too long; give a shorter path",
}


def os_error_message(exc: OSError) -> str | None:
    """One line for an OSError about a path the user gave (file, errno and what to do), else None."""
    if exc.filename is None and exc.errno != errno.ENOSPC:
        return None
    what = _OS_ADVICE.get(exc.errno, exc.strerror or str(exc))
    return f"{exc.filename if exc.filename is not None else 'output'}: {what} ({exc.strerror or exc})"


_FREEZE_AT_EXIT: list = []  # gc.freeze registered with atexit, once per process (see main)


def main() -> None:
    """Run the CLI; a user error (bad YAML, unknown name) prints one clear message and exits 2, and so
    does an operating-system error on a path (a folder given for a file, a full disk, a missing parent)."""
    if not _FREEZE_AT_EXIT:  # once per process (tests call main in-process many times)
        # At exit (after the command closed its files, before the interpreter's shutdown collections) the ~80k
        # objects left, mostly from imports, are frozen out of the collector, so shutdown does not scan them in
        # full collections: 0.6-1.0 s after a quick start on a loaded 2-core machine, 0.13-0.17 s with this
        # (session 39). Registered first, it runs after the handlers registered later (Ray's shutdown); only
        # cyclic garbage left at exit is not collected.
        _FREEZE_AT_EXIT.append(atexit.register(gc.freeze))
    app = load_commands(modules_for(sys.argv))
    try:
        app()  # standalone: usage errors (unknown command, bad option) print a message and exit 2
    except DseUserError as exc:
        if os.environ.get("DSE_FULL_ERROR"):
            raise
        sys.stderr.write(f"{exc}\n")
        sys.exit(2)
    except OSError as exc:
        message = os_error_message(exc)
        if message is None or os.environ.get("DSE_FULL_ERROR"):
            raise
        sys.stderr.write(f"{message}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
