"""`dse sensitivity` and the `dse evaluate --samples N` table (Monte-Carlo p10/p50/p90)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List, Optional

import numpy as np
import typer
from rich.table import Table

from dse.cli_app import app
from dse.commands._console import check_workload_flags, console, not_empty, software_help
from dse.errors import DseUserError
from dse.evaluate.metrics import metric_info

DEFAULT_OBJECTIVES = ("mix.throughput", "system_cost_usd", "tco_usd_per_mtok")


def _fmt(v: float) -> str:
    return f"{v:,.4g}"


def _tech(path: Optional[Path]):
    from dse.model.technology import default_technology, load_technology

    return load_technology(path) if path else default_technology()


def print_samples(design: Any, the_mix: Any, samples: int, seed: int, software: Optional[str], as_json: bool,
                  tech_path: Optional[Path] = None, model_error: bool = True) -> None:
    """Monte-Carlo evaluation of one design: nominal, p10, p50, p90 of every numeric float metric."""
    from dse.evaluate.metrics import SCENARIO, metric_info
    from dse.uncertainty.montecarlo import monte_carlo_designs

    mc = monte_carlo_designs([design], the_mix, _tech(tech_path), samples=samples, seed=seed, software=software,
                             model_error=model_error)
    q = mc.quantiles()
    shown = []
    for col, qs in q.items():
        info = metric_info(col, the_mix)
        if info is None or info.metric.dtype != "float":
            continue
        if info.metric.scope == "scenario" and not SCENARIO[info.metric.name].table_row:
            continue
        if mc.nominal[col][0] == 0 and not np.any(qs[:, 0]):
            continue  # a metric of another scenario kind (images/s of an LLM), or infeasible
        shown.append((col, info, float(mc.nominal[col][0]), qs[:, 0]))
    if as_json:
        out = {"design": design.name, "mix": the_mix.name, "samples": samples, "seed": seed,
               "model_error": {k: float(np.std(np.log(v))) for k, v in mc.error_factor.items()},
               "metrics": {c: {"nominal": nom, "p10": float(v[0]), "p50": float(v[1]), "p90": float(v[2]),
                               "unit": info.unit} for c, info, nom, v in shown}}
        typer.echo(json.dumps(out, indent=2))
        return
    con = console()
    con.print(f"[bold]{design.name}[/] on mix [bold]{the_mix.name}[/]: {samples} Monte-Carlo samples of "
              f"{len(mc.tech_values[0]) if mc.tech_values else 0} technology ranges"
              + (" and the model error (dse validate, held-out split)" if model_error else "")
              + f"; {mc.full_evaluations} full re-evaluations")
    t = Table(show_header=True, header_style="bold")
    for h in ("metric", "unit", "nominal", "p10", "p50", "p90"):
        t.add_column(h, justify="left" if h in ("metric", "unit") else "right")
    for col, info, nom, v in shown:
        t.add_row(col, info.unit, _fmt(nom), _fmt(v[0]), _fmt(v[1]), _fmt(v[2]))
    con.print(t)


@app.command()
def sensitivity(
    design: str = typer.Argument(..., help="catalog name (see `dse catalog`) or a design YAML file"),
    mix: Optional[str] = typer.Option(None, "--mix", help="built-in mix (default balanced)"),
    scenario: Optional[str] = typer.Option(None, "--scenario", help="a single built-in scenario"),
    objective: Optional[List[str]] = typer.Option(None, "--objective", "-o",
                                                  help=f"metric column (repeatable; default {', '.join(DEFAULT_OBJECTIVES)})"),
    tech: Optional[Path] = typer.Option(None, "--tech", help="technology override YAML (may hold ranges)"),
    software: Optional[str] = typer.Option(None, "--software", help=software_help()),
    all_rows: bool = typer.Option(False, "--all", help="also list the changes with no effect"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """Marginal change of each objective per knob step (from the knob registry) and per technology range
    end, ranked by effect. Elasticity = relative change of the objective / relative change of the knob."""
    from dse.designs import load_design
    from dse.uncertainty.sensitivity import ranked
    from dse.uncertainty.sensitivity import sensitivity as run
    from dse.workloads.scenarios import load_mix, load_scenario, mix_of

    check_workload_flags(mix, scenario, None)
    not_empty(software, "--software")
    d = load_design(design)
    the_mix = mix_of([load_scenario(scenario)]) if scenario else load_mix(mix or "balanced")
    objs = list(objective or DEFAULT_OBJECTIVES)
    for o in objs:
        info = metric_info(o, the_mix)
        if info is not None and not info.metric.numeric:
            raise DseUserError(f"--objective {o}: is a {info.metric.dtype} metric, not a number; give a numeric "
                               f"metric (e.g. {', '.join(DEFAULT_OBJECTIVES)})")
    nominal, changes = run(d, the_mix, objs, _tech(tech), software=software)
    rows = ranked(changes, objs)
    if not all_rows:
        rows = [c for c in rows if any(c.effect(o) > 0 for o in objs) or not c.feasible]
    if as_json:
        typer.echo(json.dumps({"design": d.name or design, "mix": the_mix.name, "nominal": nominal,
                               "changes": [{"kind": c.kind, "name": c.name, "from": c.old, "to": c.new,
                                            "feasible": c.feasible, "delta_rel": c.delta_rel,
                                            "elasticity": c.elasticity} for c in rows]}, indent=2, default=str))
        return
    con = console()
    con.print(f"[bold]{d.name or design}[/] on mix [bold]{the_mix.name}[/]: "
              + ", ".join(f"{o} {_fmt(v)}" for o, v in nominal.items()))
    t = Table(show_header=True, header_style="bold")
    t.add_column("change")
    t.add_column("from → to")
    for o in objs:
        t.add_column(f"Δ {o}", justify="right")
        t.add_column("elast.", justify="right")
    for c in rows:
        cells = []
        for o in objs:
            if not c.feasible:
                cells += ["[red]infeasible[/]", ""]
            else:
                e = c.elasticity.get(o)
                cells += [f"{100 * c.delta_rel[o]:+.2f} %", "" if e is None else f"{e:+.3f}"]
        old = _fmt(c.old) if isinstance(c.old, float) else str(c.old)
        new = _fmt(c.new) if isinstance(c.new, float) else str(c.new)
        t.add_row(("" if c.kind == "knob" else "tech ") + c.name, f"{old} → {new}", *cells)
    con.print(t)
    hidden = len(changes) - len(rows)
    if hidden:
        con.print(f"{hidden} changes with no effect on these objectives not shown (--all lists them)")
