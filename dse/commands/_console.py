"""One console for every command: as wide as the terminal, or wide enough for tables when piped."""

from __future__ import annotations

import sys

from rich.console import Console

PIPED_WIDTH = 160


def console(stderr: bool = False) -> Console:
    """A rich Console; when output is not a terminal, tables get PIPED_WIDTH columns instead of 80."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=PIPED_WIDTH)
