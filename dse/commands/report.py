"""CLI: `dse dashboard RUN_DIR... [--spec dashboards/x.yaml] --out FILE.html [--png DIR]`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer

from dse.cli_app import app
from dse.commands._console import output_file, output_folder
from dse.errors import DseUserError


@app.command("dashboard")
def dashboard_cmd(
    run_dirs: List[Path] = typer.Argument(..., help="run folders written by `dse run` (several are compared)"),
    spec: Optional[Path] = typer.Option(None, "--spec", help="dashboard YAML (default: dashboards/default.yaml)"),
    out: Path = typer.Option(..., "--out", help="HTML file to write (self-contained, opens offline)"),
    png: Optional[Path] = typer.Option(None, "--png", help="also write one PNG per view into this folder"),
) -> None:
    """Write an offline HTML dashboard: Pareto explorer, roofline, time breakdown, front composition, convergence."""
    from dse.report.page import build_and_write
    from dse.runs.reader import no_front_message
    from dse.report.spec import default_spec, load_dashboard_spec

    output_file(out, "--out")
    if png is not None:
        output_folder(png, "--png")
    t0 = time.perf_counter()
    dash_spec = load_dashboard_spec(spec) if spec else default_spec()
    empty = [m for m in (no_front_message(r, str(r)) for r in run_dirs) if m]
    if len(empty) == len(run_dirs):  # nothing to explore: the same exit 2 and reasons as `dse pareto`
        raise DseUserError("; ".join(empty))
    path, pngs, d = build_and_write(run_dirs, dash_spec, out, png)
    shown = sum(r["front_shown"] + r["dominated_shown"] for r in d.runs)
    total = sum(r["trials"] for r in d.runs)
    typer.echo(f"dashboard: {path} ({path.stat().st_size / 1e6:.1f} MB, {shown:,} of {total:,} trials plotted, "
               f"{time.perf_counter() - t0:.1f} s)")
    for p in pngs:
        typer.echo(f"  png: {p}")
    for n in d.notes:
        typer.echo(f"  note: {n}", err=True)
