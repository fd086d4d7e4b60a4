"""The typer application object shared by every command module (see dse/commands/)."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="dse",
    help="Design-space exploration for AI accelerators: chips, workloads, studies, Pareto fronts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
