"""`dse compare DESIGN...`: designs side by side outside any study — metrics with units from the metric
registry, the mapping (plan) of each scenario, area / cost / power breakdowns and rooflines; `--html`
writes the same tables and the overlaid rooflines as an offline page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.table import Table

from dse.cli_app import app
from dse.commands._console import console, output_file, software_help
from dse.commands._format import money, number
from dse.commands.perf import _py, _to_jsonable, check_workload_flags, mix_help, scenario_help
from dse.errors import DseUserError
from dse.evaluate.metrics import DESIGN, MIX, SCENARIO

# the breakdown blocks of `describe_designs` shown by compare, with the unit of their values
BREAKDOWNS = (("area (mm² per chip)", "area_mm2"), ("build cost (per chip; network and boards per system)", "cost_usd"),
              ("power (W)", "power_w"))


def _cell(v: Any, unit: str) -> str:
    v = _py(v)
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, str):
        return v
    return money(float(v)) if unit.startswith("US$") and v else number(v)


def _label(metric, kind: str | None = None) -> str:
    unit = metric.unit_for(kind)
    return f"{metric.label} ({unit})" if unit and unit not in ("US$", "fraction") and unit not in metric.label \
        else metric.label


def comparison_rows(labels: list[str], cols: dict[str, dict], mix, described: dict[str, dict]) -> list[tuple]:
    """(section, row label, [cell per design]) for every registry metric of the mix, the mappings and the
    area / cost / power breakdowns; metric names and units come from `dse.evaluate.metrics`."""
    rows: list[tuple] = []
    for m in DESIGN.values():
        if m.numeric:
            rows.append(("design", _label(m), [_cell(cols[d][m.name], m.unit_for()) for d in labels]))
    for m in MIX.values():
        if m.numeric and m.name in next(iter(cols.values())):
            unit = f"× {mix.reference_design}" if m.unit == "× reference" else m.unit_for()
            lab = f"{m.label} ({unit})" if unit not in ("US$",) else m.label
            rows.append((f"mix {mix.name}", lab, [_cell(cols[d][m.name], unit) for d in labels]))
    for e in mix.scenarios:
        s, kind = e.scenario.name, e.scenario.kind
        rows.append((s, "mapping", [_mapping(cols[d], s) for d in labels]))
        for m in SCENARIO.values():
            if m.table_row and kind in m.kinds:
                rows.append((s, _label(m, kind), [
                    _cell(cols[d][f"{s}.{m.name}"], m.unit_for(kind)) if cols[d][f"{s}.feasible"] else ""
                    for d in labels]))
    for title, key in BREAKDOWNS:
        names = list(dict.fromkeys(k for d in labels for k, v in described[d][key].items()
                                   if isinstance(v, (int, float)) and not isinstance(v, bool)))
        for k in names:  # money only for dollar amounts (not dies_per_wafer or yield_ of the cost block)
            rows.append((title, k, [_cell(described[d][key].get(k, 0.0), "US$" if "usd" in k else "")
                                    for d in labels]))
    return rows


def _mapping(c: dict, s: str) -> str:
    if not c[f"{s}.feasible"]:
        return f"infeasible: {c[f'{s}.reason']}"
    ep = int(c.get(f"{s}.ep", 1) or 1)
    return (f"tp{int(c[f'{s}.tp'])} pp{int(c[f'{s}.pp'])}{f' ep{ep}' if ep > 1 else ''} dp{int(c[f'{s}.dp'])} "
            f"batch {int(c[f'{s}.batch'])}")


def roofline_rows(labels: list[str], infos: dict[tuple[str, str], dict | str], scenarios: list[str]) -> list[tuple]:
    """Roofline summary per design: peak, bandwidths, knees, and each scenario's time per phase."""
    rows: list[tuple] = []
    first = {d: next((v for (dd, _), v in infos.items() if dd == d and isinstance(v, dict)), None) for d in labels}
    for key, lab in (("peak_tflops", "peak TFLOP/s per chip"), ("mem_bw_tbps", "off-chip TB/s per chip"),
                     ("sram_bw_tbps", "SRAM TB/s per chip"), ("knee_flop_per_byte", "off-chip knee (FLOP/byte)"),
                     ("sram_knee_flop_per_byte", "SRAM knee (FLOP/byte)")):
        rows.append(("roofline", lab, [number(first[d][key]) if first[d] else "" for d in labels]))
    for s in scenarios:
        phases = list(dict.fromkeys(p for (d, ss), v in infos.items() if ss == s and isinstance(v, dict)
                                    for p in v["phase_time_ms"]))
        for p in phases:
            rows.append((f"roofline {s}", f"{p} time per step (ms)", [
                number(infos[(d, s)]["phase_time_ms"].get(p, 0.0)) if isinstance(infos[(d, s)], dict) else ""
                for d in labels]))
    return rows


def print_rows(rows: list[tuple], labels: list[str]) -> None:
    """One table per section, designs as columns (numbers never wrap; row labels fold)."""
    con = console()
    sections = list(dict.fromkeys(r[0] for r in rows))
    for sec in sections:
        t = Table(title=sec, title_justify="left", header_style="bold")
        t.add_column("", overflow="fold", ratio=None)
        for d in labels:
            t.add_column(d, justify="right", overflow="fold")
        for s, lab, cells in rows:
            if s == sec:
                t.add_row(lab, *cells)
        con.print(t)


@app.command("compare")
def compare_cmd(
    designs: list[str] = typer.Argument(..., metavar="DESIGN...",
                                        help="two or more catalog names or aliases (any case) or design YAML files"),
    mix: Optional[str] = typer.Option(None, "--mix", help=mix_help()),
    scenario: Optional[str] = typer.Option(None, "--scenario", help=scenario_help()),
    software: Optional[str] = typer.Option(None, "--software", help=software_help()),
    html: Optional[Path] = typer.Option(None, "--html", help="write an offline HTML page with the rooflines of "
                                        "all designs overlaid and the tables below"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """DESIGNs side by side: metrics, mappings, area / cost / power breakdowns and rooflines."""
    from dse.commands.hardware import describe_designs
    from dse.designs import load_design
    from dse.evaluate import evaluate_design, operator_breakdown
    from dse.model.technology import default_technology
    from dse.workloads.scenarios import load_mix, load_scenario, mix_of

    check_workload_flags(mix, scenario, None)
    if len(designs) < 2:
        raise DseUserError(f"dse compare needs two or more designs, got {len(designs)}; for one design run "
                           f"`dse evaluate {designs[0]}` or `dse describe {designs[0]}`")
    if html is not None:
        output_file(html, "--html")
    loaded: dict[str, Any] = {}
    for spec in designs:
        d = load_design(spec)
        label = d.name or spec
        if label in loaded:
            raise DseUserError(f"{spec}: design {label} is named twice; compare different designs")
        loaded[label] = d
    the_mix = mix_of([load_scenario(scenario)]) if scenario else load_mix(mix or "balanced")
    labels = list(loaded)
    cols = {lab: evaluate_design(d, the_mix, software=software) for lab, d in loaded.items()}
    tech = default_technology()
    described = dict(zip(labels, describe_designs(list(loaded.values()), tech)))
    scen = [e.scenario for e in the_mix.scenarios]
    infos: dict[tuple[str, str], dict | str] = {}
    for lab, d in loaded.items():
        for sc in scen:
            try:
                infos[(lab, sc.name)] = operator_breakdown(d, sc, software=software)
            except DseUserError as exc:
                infos[(lab, sc.name)] = str(exc)
    rows = comparison_rows(labels, cols, the_mix, described) + roofline_rows(labels, infos, [s.name for s in scen])
    if as_json:
        out = {"mix": the_mix.name, "reference_design": the_mix.reference_design,
               "designs": {lab: {"metrics": {k: _to_jsonable(v) for k, v in cols[lab].items()},
                                 "breakdowns": {key: described[lab][key] for _, key in BREAKDOWNS},
                                 "rooflines": {s.name: ({k: v for k, v in infos[(lab, s.name)].items()
                                                         if k != "operators"}
                                                        if isinstance(infos[(lab, s.name)], dict)
                                                        else {"error": infos[(lab, s.name)]}) for s in scen}}
                           for lab in labels}}
        typer.echo(json.dumps(out, indent=2, default=_to_jsonable))
    else:
        console().print(f"[bold]{' vs '.join(labels)}[/] on mix [bold]{the_mix.name}[/] "
                        f"(mix throughput relative to {the_mix.reference_design})")
        print_rows(rows, labels)
    if html is not None:
        from dse.report.compare_page import table_html, write_compare_html

        sections = list(dict.fromkeys(r[0] for r in rows))
        tables = "".join(table_html(sec, ["", *labels], [[lab, *cells] for s, lab, cells in rows if s == sec])
                         for sec in sections)
        write_compare_html(loaded, scen, html, software=software, title=f"{' vs '.join(labels)}",
                           subtitle=f"mix {the_mix.name} (mix throughput relative to {the_mix.reference_design}); "
                                    f"scenarios {', '.join(s.name for s in scen)}", tables=tables)
        console(stderr=True).print(f"wrote {html}")
