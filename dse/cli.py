"""Entry point of the `dse` command: every command module is imported here (each registers its
commands on `dse.cli_app.app`), and user errors map to one message and exit status 2."""

from __future__ import annotations

import os
import sys

from dse.cli_app import app
# each import registers its commands, in the order `dse --help` lists them
from dse.commands import hardware  # noqa: F401  catalog, describe
from dse.commands import perf  # noqa: F401  evaluate, roofline
from dse.commands import compare  # noqa: F401  compare
from dse.commands import study  # noqa: F401  run, pareto, export
from dse.commands import report  # noqa: F401  dashboard
from dse.commands import validate  # noqa: F401  validate, calibrate
from dse.commands import workloads  # noqa: F401  models, scenarios, mixes
from dse.commands import uncertainty  # noqa: F401  sensitivity
from dse.errors import DseUserError

__all__ = ["app", "main"]


def main() -> None:
    """Run the CLI; a user error (bad YAML, unknown name) prints one clear message and exits 2."""
    try:
        app()  # standalone: usage errors (unknown command, bad option) print a message and exit 2
    except DseUserError as exc:
        if os.environ.get("DSE_FULL_ERROR"):
            raise
        sys.stderr.write(f"{exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
