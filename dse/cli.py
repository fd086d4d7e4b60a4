"""Entry point of the `dse` command: every command module is imported here (each registers its
commands on `dse.cli_app.app`), and user errors map to one message and exit status 2."""

from __future__ import annotations

import errno
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


def main() -> None:
    """Run the CLI; a user error (bad YAML, unknown name) prints one clear message and exits 2, and so
    does an operating-system error on a path (a folder given for a file, a full disk, a missing parent)."""
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
