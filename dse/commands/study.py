"""CLI: `dse run` (a study or sweep with a live progress display), `dse pareto`, `dse export`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import typer

from dse.cli_app import app
from dse.commands._console import not_empty
from dse.config import MAX_YAML_INT  # counts beyond int64: the same limit as in YAML inputs
from dse.errors import DseUserError


def _fmt(x: float) -> str:
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    return f"{x:.4g}" if 1e-3 <= abs(x) < 1e6 else f"{x:.3e}"


@app.command("run")
def run_cmd(
    study_file: Path = typer.Argument(..., help="study YAML (studies/*.yaml)"),
    out: Path = typer.Option(Path("runs"), "--out", help="folder for run folders (runs/<study>/)"),
    trials: Optional[int] = typer.Option(None, "--trials", min=1, max=MAX_YAML_INT - 1, help="override budget.trials"),
    address: Optional[str] = typer.Option(None, "--address", help="Ray address to attach to (else RAY_ADDRESS or embedded)"),
    serial: bool = typer.Option(False, "--serial", help="evaluate in-process, no Ray"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no live display"),
) -> None:
    """Run a study (or sweep) to its budget; rerunning continues where it stopped."""
    from rich.console import Console

    from dse.study.spec import load_study

    not_empty(address, "--address")
    study = load_study(study_file)
    console = Console(stderr=True)
    if study.spec.sweep:
        _run_sweep(study, out, trials, serial, address, console, quiet)
        return
    from dse.study.runner import StudyRunner, run_dir_for

    run_dir = run_dir_for(study, out)
    budget = trials if trials is not None else study.spec.budget.trials
    with _live(console, quiet, study.name, budget) as update:
        res = StudyRunner(study, run_dir, trials=trials, serial=serial, address=address, on_progress=update).run()
    s = res.summary
    if res.resumed_from:
        console.print(f"resumed from {res.resumed_from} stored trials")
    if s.get("model_changed_on_resume"):
        console.print("[yellow]warning:[/] the model code changed since the stored trials were evaluated; "
                      "their metrics come from the older model (use a new --out folder for a clean run)")
    hv = s.get("hypervolume") or 0.0
    typer.echo(f"{study.name}: {s['trials']} trials ({s['trials_this_run']} this run, {s['wall_time_s']:.1f} s, "
               f"{s['trials_per_s'] or 0:.0f} trials/s), {s['feasible']} feasible, front {s['front_size']}, "
               f"hypervolume {_fmt(hv)}")
    typer.echo(f"results in {run_dir}/ (results.parquet, pareto.parquet, summary.json)")
    if not s.get("feasible"):  # the summary counts the run's feasible trials: the folder is read only without one
        _fail_without_front(run_dir, study)


def _fail_without_front(run_dir: Path, study) -> None:
    """A run that ended with no feasible trial exits 2 saying why (never a silent exit 0 with no front)."""
    from dse.runs.reader import no_front_message

    message = no_front_message(run_dir, str(study.path or study.name))
    if message is not None:
        raise DseUserError(message)


class _live:
    """Rich progress bar fed by the runner's per-batch Progress; a no-op when quiet or not a TTY."""

    def __init__(self, console, quiet: bool, name: str, budget: Optional[int]):
        self.console, self.quiet, self.name, self.budget = console, quiet, name, budget
        self.progress = None

    def __enter__(self):
        if self.quiet:
            return lambda p: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[stats]}"), TimeElapsedColumn(), console=self.console,
                                 transient=False, refresh_per_second=4)
        self.progress.__enter__()
        self.task = self.progress.add_task(self.name, total=self.budget, stats="starting")
        return self.update

    def update(self, p) -> None:
        share = p.feasible / p.done if p.done else 0.0
        stats = (f"{p.rate:,.0f} trials/s · feasible {share:.0%} · front {p.front_size} · "
                 f"HV {_fmt(p.hypervolume)}")
        self.progress.update(self.task, completed=p.done, total=p.budget, stats=stats)

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)
        return False


def _run_sweep(study, out, trials, serial, address, console, quiet) -> None:
    from dse.study.spec import sub_studies
    from dse.study.sweep import run_sweep

    subs = sub_studies(study)
    prog = None
    tasks = {}
    if not quiet:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console, refresh_per_second=2)
        prog.__enter__()
        for s in subs:
            tasks[s.name] = prog.add_task(s.name, total=trials or s.spec.budget.trials)

    def update(done, budgets, elapsed):
        if prog is not None:
            for n, d in done.items():
                prog.update(tasks[n], completed=d, total=budgets[n])

    try:
        summary = run_sweep(study, out, trials=trials, serial=serial, address=address, on_progress=update)
    finally:
        if prog is not None:
            prog.__exit__(None, None, None)
    for name, s in summary["studies"].items():
        typer.echo(f"  {name}: {s['trials']} trials, {s['feasible']} feasible, front {s['front_size']}")
    typer.echo(f"{study.name}: {summary['trials']} trials in {len(subs)} studies ({summary['wall_time_s']:.1f} s), "
               f"merged front {summary['front_size']}")
    typer.echo(f"results in {Path(out) / study.name}/ (results.parquet, pareto.parquet, summary.json; one folder per study)")
    _fail_without_front(Path(out) / study.name, study)


@app.command("pareto")
def pareto_cmd(
    run_dir: Path = typer.Argument(..., help="a run folder (runs/<study>/)"),
    as_json: bool = typer.Option(False, "--json", help="print the front as JSON records"),
    limit: int = typer.Option(50, "--limit", min=1, max=MAX_YAML_INT - 1, help="rows shown in the table"),
) -> None:
    """Show the Pareto front of a run."""
    from dse.runs.reader import load_trials, run_meta
    from dse.study.export import select

    meta = run_meta(run_dir)
    df = load_trials(run_dir)
    front = select(df, meta, "pareto")
    if front.height == 0:
        from dse.runs.reader import no_front_message

        raise DseUserError(no_front_message(run_dir, str(run_dir)) or f"{run_dir}: no feasible trial yet")
    metrics = [o.metric for o in meta.objectives]
    metrics_first = [m for m in metrics if m in front.columns] + [c for c in ("study",) if c in front.columns]
    if front.height and metrics and metrics[0] in front.columns:
        front = front.sort(metrics[0], descending=meta.objectives[0].maximize)
    knobs = [k for k in (meta.varying or meta.knobs) if k in front.columns]
    cols = ["trial"] + metrics_first + knobs
    if as_json:
        typer.echo(json.dumps(front.select(cols).to_dicts(), indent=2, default=str))
        return
    from rich.table import Table

    from dse.commands._console import console
    from dse.commands._format import cell, fitting_columns

    con = console()
    cells = [[cell(v, c) for v, c in zip(row, cols)] for row in front.select(cols).head(limit).iter_rows()]
    arrows = {o.metric: " ↑" if o.maximize else " ↓" for o in meta.objectives}
    heads = [(c.split(".", 1)[1] if c.startswith(("chip.", "system.")) else c).replace(".", ".\n") + arrows.get(c, "")
             for c in cols]  # a metric header breaks after its scenario: `local_llm.` / `tpot_ms ↓`
    shown = fitting_columns(heads, cells, con.width, keep=1 + len(metrics_first))
    table = Table(title=f"{meta.name}: Pareto front ({front.height} of {df.height} trials)")
    for i, (c, h) in enumerate(zip(cols[:shown], heads)):  # cells never wrap (min_width); headers may fold
        table.add_column(h, justify="right" if c not in ("study",) else "left", overflow="fold",
                         min_width=max([len(r[i]) for r in cells], default=1))
    for row in cells:
        table.add_row(*row[:shown])
    con.print(table)
    if shown < len(cols):
        typer.echo(f"{len(cols) - shown} knob column(s) not shown at {con.width} columns: "
                   f"{', '.join(cols[shown:])} (--json, or a wider terminal)")
    if front.height > limit:
        typer.echo(f"... {front.height - limit} more (--limit, --json)")


@app.command("export")
def export_cmd(
    run_dir: Path = typer.Argument(..., help="a run folder (runs/<study>/)"),
    select: str = typer.Option("pareto", "--select", help="pareto | top:N | trial:ID,ID,..."),
    fmt: str = typer.Option("yaml", "--format", help="yaml | json | csv"),
    out: Path = typer.Option(..., "--out", help="output file (a folder for several YAML designs)"),
) -> None:
    """Export selected designs as `dse evaluate` inputs (YAML/JSON) or as a CSV table."""
    from dse.errors import DseUserError
    from dse.study.export import export

    if fmt not in ("yaml", "json", "csv"):
        raise DseUserError(f"--format {fmt}: expected yaml, json or csv")
    paths = export(run_dir, select, fmt, out)
    where = paths[0] if len(paths) == 1 else f"{out}/ ({len(paths)} files)"
    typer.echo(f"exported {select} of {run_dir} as {fmt} to {where}")
