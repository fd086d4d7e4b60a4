"""Entry point of the `dse` command: loads every command module and maps user errors to exit status 2."""

from __future__ import annotations

import importlib
import os
import sys

from dse.cli_app import app

COMMAND_MODULES = (
    "dse.commands.hardware",   # catalog, describe
    "dse.commands.perf",       # evaluate, roofline
    "dse.commands.study",      # run, pareto, export
    "dse.commands.report",     # dashboard
    "dse.commands.validate",   # validate, calibrate
)


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def main() -> None:
    """Run the CLI; a user error (bad YAML, unknown name) prints one clear message and exits 2."""
    from dse.errors import DseUserError

    _load_commands()
    try:
        app()  # standalone: usage errors (unknown command, bad option) print a message and exit 2
    except DseUserError as exc:
        if os.environ.get("DSE_FULL_ERROR"):
            raise
        sys.stderr.write(f"{exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
