"""The typer application object shared by every command module (see dse/commands/ and dse/cli.py)."""

from __future__ import annotations

from typing import Optional

import typer

from dse import __version__

app = typer.Typer(
    name="dse",
    help="Design-space exploration for AI accelerators: chips, workloads, studies, Pareto fronts.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"dse {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Optional[bool] = typer.Option(None, "--version", callback=_print_version, is_eager=True,
                                                 help="Print the dse version and exit.")) -> None:
    """Design-space exploration for AI accelerators: chips, workloads, studies, Pareto fronts."""
