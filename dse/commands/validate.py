"""`dse validate` and `dse calibrate`: the performance model against published measurements."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from dse.cli_app import app
from dse.commands._console import output_file


def _table(rows, summaries, split: str) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(width=200)
    t = Table(show_header=True, header_style="bold", title=f"dse validate · split {split}")
    for h in ("id", "regime", "split", "class", "metric", "measured", "predicted", "error"):
        t.add_column(h, justify="right" if h in ("measured", "predicted", "error") else "left")
    for r in rows:
        err = f"{r.error_pct:+.1f}%"
        style = "red" if abs(r.error_pct) > 25 else ""
        t.add_row(r.id + (" (loose)" if r.loose else ""), r.regime, r.split, r.software_class,
                  f"{r.metric} [{r.unit}]", f"{r.measured:.4g}", f"{r.predicted:.4g}", f"[{style}]{err}[/]" if style else err)
    con.print(t)
    con.print(summary_markdown(summaries, split), markup=False, highlight=False)


def summary_markdown(summaries, split: str) -> str:
    """The per-regime summary as a Markdown table (what the README quotes)."""
    lines = [f"| regime ({split}) | n | median abs error | worst abs error | within ±25 % |",
             "|---|---:|---:|---:|---:|"]
    for s in summaries:
        name = f"**{s.group}**" if s.group == "overall" else s.group
        lines.append(f"| {name} | {s.n} | {s.median_abs_pct:.1f} % | {s.worst_abs_pct:.1f} % | {s.within_25_pct:.0f} % |")
    return "\n".join(lines)


@app.command()
def validate(
    split: str = typer.Option("test", "--split", help="test (held out), train, or all"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    html: Optional[Path] = typer.Option(None, "--html", help="write a log-log predicted-vs-measured plot (HTML)"),
    by: Optional[str] = typer.Option(None, "--by", help="generation: fit on A100-era hardware, report the error "
                                     "on newer hardware (dse/validate/generation.py); stack: the error and rank "
                                     "correlation left after one efficiency scale per software stack "
                                     "(dse/validate/scaled.py)"),
) -> None:
    """Predicted vs measured for every published measurement of SPLIT, with per-regime error statistics.

    Predictions are recomputed from the model with the constants in dse/model/data/calibration.yaml;
    the measurements are dse/catalog/measurements.yaml (the split rule is in dse/validate/measurements.py).
    """
    from dse.validate.report import predict_rows, summarize, to_json, write_html

    if html is not None:
        output_file(html, "--html")

    if by == "stack":
        from dataclasses import asdict

        from dse.validate.scaled import scale_per_stack, stack_markdown
        from dse.validate.serving import serving_rows

        rep = scale_per_stack(predict_rows(split) + serving_rows(split))
        if as_json:
            typer.echo(json.dumps({"split": split, "scales": [asdict(s) for s in rep.scales],
                                   "rank_correlations": [asdict(c) for c in rep.ranks],
                                   "summary_before": [asdict(s) for s in rep.before],
                                   "summary_after": [asdict(s) for s in rep.after],
                                   "measurements": [asdict(r) for r in rep.rows]}, indent=2))
        else:
            typer.echo(stack_markdown(rep, split))
        return
    if by is not None:
        from dataclasses import asdict

        from dse.errors import DseUserError
        from dse.validate.generation import cross_generation, generation_markdown

        if by != "generation":
            raise DseUserError(f"--by {by}: unknown grouping (valid: generation, stack)")
        rep = cross_generation()
        if as_json:
            typer.echo(json.dumps({"train_hardware": rep.train_hardware,
                                   "summary": [asdict(s) for s in rep.cross_summary],
                                   "shipped_summary": [asdict(s) for s in rep.shipped_summary],
                                   "measurements": [asdict(r) for r in rep.cross]}, indent=2))
        else:
            typer.echo(generation_markdown(rep))
        return
    from dse.validate.serving import serving_rows

    rows = predict_rows(split) + serving_rows(split)
    summaries = summarize(rows)
    if html is not None:
        write_html(rows, html, f"dse model vs published measurements ({split} split)")
    if as_json:
        typer.echo(json.dumps(to_json(rows, summaries, split), indent=2))
        return
    _table(rows, summaries, split)
    if html is not None:
        typer.echo(f"wrote {html}")


def fitted_help() -> str:
    """`dse calibrate --software` help: the classes the fit owns (a derived class takes its parent's)."""
    from dse.model.calibration import calibration_classes, derived_classes

    fitted = [k for k in calibration_classes() if k not in derived_classes()]
    return f"fit one software stack: {', '.join(fitted)} (see `dse software`); default all"


@app.command()
def calibrate(
    software: Optional[str] = typer.Option(None, "--software", help=fitted_help()),
    max_evals: int = typer.Option(600, "--max-evals", min=10, help="objective evaluations per Nelder-Mead run"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the fit, do not write the calibration file"),
) -> None:
    """Fit each software class's constants on the TRAIN split (least squares on log error) and write them
    to dse/model/data/calibration.yaml. Deterministic; the test split is never fitted: it only gives the
    held-out error spread per regime and class stored in dse/uncertainty/data/model_error.yaml."""
    from rich.console import Console
    from rich.table import Table

    from dse.validate.calibrate import calibrate as run_fit
    from dse.validate.calibrate import write_calibration

    results = run_fit([software] if software else None, max_evals=max_evals)
    con = Console()
    for name, r in results.items():
        t = Table(title=f"{name}: {r.n_train} training points, loss {r.loss_before:.4g} → {r.loss_after:.4g} "
                        f"({r.evals} evaluations)", header_style="bold")
        for h in ("constant", "initial", "fitted"):
            t.add_column(h, justify="left" if h == "constant" else "right")
        for key in r.fitted:
            t.add_row(key, f"{getattr(r.before, key):.4g}", f"{getattr(r.after, key):.4g}")
        con.print(t)
    if not dry_run:
        write_calibration(results)
        con.print("wrote dse/model/data/calibration.yaml")
        from dse.uncertainty.model_error import DATA_FILE, write_model_error

        write_model_error()
        con.print(f"wrote {DATA_FILE.relative_to(DATA_FILE.parents[3])} (held-out error spread per regime and class)")
