"""Shared CLI helpers: one console for every command (as wide as the terminal or $COLUMNS, or wide enough
for tables when piped), checks of output paths before any work, and checks of option values."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.console import Console

from dse.errors import DseUserError

PIPED_WIDTH = 160


def width() -> int | None:
    """$COLUMNS when set (a person or a test asking for a width), else None (rich asks the terminal)."""
    cols = os.environ.get("COLUMNS", "")
    return int(cols) if cols.isdigit() and int(cols) > 0 else None


def console(stderr: bool = False) -> Console:
    """A rich Console of $COLUMNS columns if set; a terminal's width; PIPED_WIDTH when piped."""
    stream = sys.stderr if stderr else sys.stdout
    if width() is not None:
        return Console(stderr=stderr, width=width())
    if stream.isatty():
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=PIPED_WIDTH)


def output_file(path: Path, option: str) -> Path:
    """Check, before any work, that `path` can be written as a file: not an existing folder, and no
    parent that is a file (a DseUserError naming the option otherwise)."""
    if path.is_dir():
        raise DseUserError(f"{option} {path}: is a folder; give a file name, e.g. {path / 'out.html'}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DseUserError(f"{option} {path}: {parent} is a file, not a folder")
            break
    return path


def output_folder(path: Path, option: str) -> Path:
    """Check that `path` can be a folder of outputs (not an existing file)."""
    if path.exists() and not path.is_dir():
        raise DseUserError(f"{option} {path}: is a file; give a folder")
    return path


def check_workload_flags(mix: str | None, scenario: str | None, model: str | None) -> None:
    """`--mix`, `--scenario` and `--model` each choose the workload: more than one is a usage error."""
    for n, v in (("mix", mix), ("scenario", scenario), ("model", model)):
        not_empty(v, f"--{n}")
    given = [f"--{n} {v}" for n, v in (("mix", mix), ("scenario", scenario), ("model", model)) if v]
    if len(given) > 1:
        raise DseUserError(f"{' and '.join(given)}: these options both choose the workload; give only one "
                           "(--mix for a mix, --scenario for one scenario, --model for an ad-hoc scenario)")


def not_empty(value: str | None, option: str) -> None:
    """An option given as an empty string (an unset shell variable, usually) is a usage error, not the default."""
    if value is not None and not value.strip():
        raise DseUserError(f"{option}: empty value; give a name (or leave the option out for the default)")


def software_help() -> str:
    """`--software` help listing every software stack of the calibration file (not by hand)."""
    from dse.model.calibration import calibration_classes, default_class

    return f"software stack: {', '.join(calibration_classes())} (see `dse software`; default {default_class()})"
