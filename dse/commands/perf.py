"""`dse evaluate`, `dse roofline` and `dse software`: a design's metrics per scenario, its per-operator roofline,
and the software stacks (calibration classes) both run under."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from dse.cli_app import app
from dse.commands._console import check_workload_flags, console, not_empty, output_file, software_help
from dse.commands._format import money, number, with_unit
from dse.errors import DseUserError
from dse.evaluate.metrics import SCENARIO, metric_info
from dse.workloads.scenarios import mix_files, mix_names, scenario_names


def mix_help() -> str:
    """`--mix` help listing every built-in mix and mix file (from the registry of mixes, not by hand)."""
    return (f"mix: {', '.join([*mix_names(), *mix_files()])} (see `dse mixes`), a scenario name, or a mix "
            "YAML file [default: balanced]")


def scenario_help() -> str:
    """`--scenario` help listing every built-in scenario."""
    return f"one scenario: {', '.join(scenario_names())} (see `dse scenarios`), or a scenario YAML file"


def _to_jsonable(v):
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v)
    return v


def _scenario_from_flags(model, batch, prompt_len, output_len, weight_bits, act_bits, kv_bits, chips,
                         weight_format=None):
    from dse.workloads.scenarios import adhoc_scenario

    return adhoc_scenario(model=model, batch=batch, prompt_len=prompt_len, output_len=output_len,
                          weight_bits=weight_bits, act_bits=act_bits, kv_bits=kv_bits, max_chips=chips,
                          weight_format=weight_format)


def _resolve_mix(mix_name, scenario_name, adhoc):
    """The workload chosen by `--mix`, `--scenario` or the ad-hoc flags (default: the balanced mix)."""
    from dse.workloads.scenarios import load_mix, load_scenario, mix_of

    check_workload_flags(mix_name, scenario_name, getattr(adhoc, "name", None) if adhoc is not None else None)

    if adhoc is not None:
        return mix_of([adhoc])
    if scenario_name:
        return mix_of([load_scenario(scenario_name)])
    return load_mix(mix_name or "balanced")


@app.command()
def evaluate(
    designs: list[str] = typer.Argument(..., metavar="DESIGN",
                                        help="catalog name or alias, any case (see `dse catalog`), or a design YAML file"),
    mix: Optional[str] = typer.Option(None, "--mix", help=mix_help()),
    scenario: Optional[str] = typer.Option(None, "--scenario", help=scenario_help()),
    model: Optional[str] = typer.Option(None, "--model", help="ad-hoc scenario: model name (e.g. Llama-3-8B), "
                                        "model YAML or Hugging Face config.json (see `dse models`)"),
    batch: int = typer.Option(1, "--batch", min=1),
    prompt_len: int = typer.Option(512, "--prompt-len", min=1),
    output_len: int = typer.Option(128, "--output-len", min=1),
    weight_bits: int = typer.Option(16, "--weight-bits", min=2, max=16),
    act_bits: Optional[int] = typer.Option(None, "--act-bits", min=2, max=16, help="default 16, or the weight format's"),
    kv_bits: int = typer.Option(16, "--kv-bits", min=2, max=16),
    weight_format: Optional[str] = typer.Option(None, "--weight-format", help="int8, fp8, int4, mxfp4, nvfp4, q4_0, ..."),
    chips: Optional[int] = typer.Option(None, "--chips", min=1, help="chips each scenario may use (at most the design's system.num_chips)"),
    tp: Optional[int] = typer.Option(None, "--tp", min=1, help="force tensor parallelism"),
    pp: Optional[int] = typer.Option(None, "--pp", min=1, help="force pipeline parallelism"),
    software: Optional[str] = typer.Option(None, "--software", help=software_help()),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    samples: int = typer.Option(0, "--samples", min=0, max=100_000, help="Monte-Carlo samples of the technology ranges and "
                                "the model error: print p10/p50/p90 (dse.uncertainty)"),
    seed: int = typer.Option(0, "--seed", min=0, help="random seed of --samples"),
) -> None:
    """Best mapping and metrics of DESIGN on a mix, one scenario, or an ad-hoc scenario."""
    from dse.designs import load_design
    from dse.evaluate import evaluate_design
    from dse.workloads.scenarios import with_max_chips

    if len(designs) > 1:
        raise DseUserError(f"dse evaluate takes one design, got {len(designs)} ({', '.join(designs)}); to see "
                           f"several side by side run `dse compare {' '.join(designs)}`")
    design = designs[0]
    check_workload_flags(mix, scenario, model)
    not_empty(software, "--software")
    not_empty(weight_format, "--weight-format")
    d = load_design(design)
    if chips is not None and chips > d.system.num_chips:
        raise typer.BadParameter(
            f"{chips} chips asked for, but design {d.name or design!r} has system.num_chips = "
            f"{d.system.num_chips}; use --chips {d.system.num_chips} or less, or a design with more chips",
            param_hint="'--chips'")
    usable = chips or d.system.num_chips
    if (tp or 1) * (pp or 1) > usable:
        raise DseUserError(f"--tp {tp or 1} --pp {pp or 1}: needs {(tp or 1) * (pp or 1)} chips, but only {usable} "
                           f"may be used (--chips or the design's system.num_chips); give tp × pp <= {usable}")
    adhoc = None
    if model:
        adhoc = _scenario_from_flags(model, batch, prompt_len, output_len, weight_bits, act_bits, kv_bits, chips,
                                     weight_format)
    the_mix = with_max_chips(_resolve_mix(mix, scenario, adhoc), chips)
    if samples:
        from dse.commands.uncertainty import print_samples

        if tp or pp:
            raise DseUserError("--samples cannot be combined with --tp/--pp (the Monte-Carlo keeps the best mapping)")
        print_samples(d, the_mix, samples, seed, software, as_json)
        return
    cols = evaluate_design(d, the_mix, software=software, force_tp=tp, force_pp=pp)
    if as_json:
        out = {"design": d.name or design, "mix": the_mix.name,
               "metrics": {k: _to_jsonable(v) for k, v in cols.items()}}
        typer.echo(json.dumps(out, indent=2))
        return
    con = console()
    con.print(f"[bold]{d.name or design}[/] on mix [bold]{the_mix.name}[/]"
              + ("" if cols["feasible"] else f"  [red]infeasible: {cols['reason']}[/]"))
    con.print(headline(cols, d.system.num_chips, the_mix.reference_design))
    names = [e.scenario.name for e in the_mix.scenarios]
    t = Table(show_header=True, header_style="bold")
    t.add_column("metric", overflow="fold")
    for s in names:
        t.add_column(s, justify="right", overflow="fold")
    kinds = {e.scenario.kind for e in the_mix.scenarios}
    shown = [m for m in SCENARIO.values() if m.table_row and kinds & set(m.kinds)]
    rows = [("mapping", None)] + [(_row_label(m, kinds), m) for m in shown]
    for label, metric in rows:
        cells = []
        for s in names:
            g = lambda k: cols[f"{s}.{k}"]  # noqa: E731
            if not g("feasible"):
                cells.append("[red]infeasible[/]" if metric is None else "")
            elif metric is None:
                ep = int(g("ep")) if f"{s}.ep" in cols else 1
                cells.append(f"tp{int(g('tp'))} pp{int(g('pp'))}{f' ep{ep}' if ep > 1 else ''} "
                             f"dp{int(g('dp'))} batch {int(g('batch'))}")
            elif metric.dtype == "str":
                cells.append(str(g(metric.name)))
            else:
                v = g(metric.name)
                cells.append(money(float(v)) if metric.unit_for().startswith("US$") and v else number(_py(v)))
        t.add_row(label, *cells)
    con.print(t)
    for s in names:
        if not cols[f"{s}.feasible"]:
            con.print(f"[red]{s}[/]: {cols[f'{s}.reason']}")


def _py(v):
    """A numpy scalar as the Python int or float it holds (for the formatter)."""
    return v.item() if hasattr(v, "item") else v


def headline(cols: dict, num_chips: int, reference: str) -> str:
    """Build cost of one chip, cost and power of the whole system (saying how many chips it has) and
    mix throughput naming its reference design, so that no figure is read against the wrong chip count."""
    m = {k: metric_info(k) for k in ("chip_cost_usd", "system_cost_usd", "power_w", "mix.throughput")}
    chips = f"{num_chips} chip{'s' if num_chips != 1 else ''}"
    return (f"{m['chip_cost_usd'].metric.label} {money(float(cols['chip_cost_usd']))} · "
            f"{m['system_cost_usd'].metric.label} ({chips}) {money(float(cols['system_cost_usd']))} · "
            f"{m['power_w'].metric.label} ({chips}) {with_unit(_py(cols['power_w']), m['power_w'].unit)} · "
            f"{m['mix.throughput'].metric.label} {number(_py(cols['mix.throughput']))} × {reference}\n"
            f"(each scenario below may use fewer of the {chips}: row 'chips used')")


def _row_label(metric, kinds: set[str]) -> str:
    """`dse evaluate` row title: the registry label and the unit for the mix's scenario kinds."""
    unit = metric.unit_for(next(iter(kinds)) if len(kinds) == 1 else None)
    return f"{metric.label} ({unit})" if unit and unit not in metric.label else metric.label


def aggregate_by_kind(rows: list[dict]) -> list[dict]:
    """Operator rows summed per (phase, kind); the bound is the one that holds most of the group's time."""
    groups: dict[tuple, dict] = {}
    for r in rows:
        g = groups.setdefault((r["phase"], r["kind"]), {"phase": r["phase"], "kind": r["kind"], "count": 0.0,
                                                         "flops": 0.0, "bytes": 0.0, "time_s": 0.0, "share": 0.0,
                                                         "_bound": {}})
        for key in ("count", "flops", "bytes", "time_s", "share"):
            g[key] += r[key]
        g["_bound"][r["bound"]] = g["_bound"].get(r["bound"], 0.0) + r["time_s"]
    out = []
    for g in groups.values():
        g["bound"] = max(g.pop("_bound").items(), key=lambda kv: kv[1])[0]
        g["intensity_flop_per_byte"] = g["flops"] / g["bytes"] if g["bytes"] else 0.0
        g["attainable_tflops"] = g["flops"] / g["time_s"] / 1e12 if g["time_s"] else 0.0
        out.append(g)
    return out


@app.command()
def roofline(
    design: str = typer.Argument(..., help="catalog name or alias (any case) or design YAML"),
    scenario: str = typer.Option("datacenter_llm", "--scenario", help=scenario_help()),
    phase: Optional[str] = typer.Option(None, "--phase", help="one of the scenario's phases: prefill or decode "
                                        "(LLM), inference (CNN); default all"),
    detail: bool = typer.Option(False, "--detail", help="one row per operator instead of per operator kind"),
    software: Optional[str] = typer.Option(None, "--software", help=software_help()),
    as_json: bool = typer.Option(False, "--json"),
    html: Optional[Path] = typer.Option(None, "--html", help="also write the roofline picture as an offline "
                                        "HTML page to this file"),
) -> None:
    """The knee and a roofline table of DESIGN on the scenario's best mapping, per operator kind."""
    from dse.designs import load_design
    from dse.evaluate import operator_breakdown
    from dse.workloads.scenarios import load_scenario

    not_empty(software, "--software")
    if html is not None:
        output_file(html, "--html")
    d = load_design(design)
    sc = load_scenario(scenario)
    if phase is not None and phase not in sc.phases:
        raise DseUserError(f"--phase {phase}: not a phase of scenario {sc.name}; valid: {', '.join(sc.phases)}")
    info = operator_breakdown(d, sc, software=software, phase=phase)
    if html is not None:
        from dse.report.compare_page import write_compare_html

        write_compare_html({d.name or design: d}, [sc], html, software=software, phase=phase,
                           title=f"Roofline of {d.name or design} on {sc.name}")
        console(stderr=True).print(f"wrote {html}")
    if as_json:
        typer.echo(json.dumps(info, indent=2, default=_to_jsonable))
        return
    con = console()
    con.print(f"[bold]{d.name or design}[/] · {sc.name} · mapping {info['mapping']} · "
              f"knee {info['knee_flop_per_byte']:.0f} FLOP/B off-chip, "
              f"{info['sram_knee_flop_per_byte']:.0f} FLOP/B SRAM · peak {info['peak_tflops']:.0f} TFLOPS")
    rows = info["operators"] if detail else aggregate_by_kind(info["operators"])
    t = Table(show_header=True, header_style="bold")
    for h in ("phase", "operator" if detail else "kind", "×", "GFLOP", "MB", "FLOP/B", "TFLOP/s", "bound", "time %"):
        t.add_column(h, justify="left" if h in ("phase", "operator", "kind", "bound") else "right")
    for r in rows:
        t.add_row(r["phase"], r["name"] if detail else r["kind"], f"{r['count']:g}", f"{r['flops'] / 1e9:,.4g}",
                  f"{r['bytes'] / 1e6:,.4g}", f"{r['intensity_flop_per_byte']:.3g}",
                  f"{r['attainable_tflops']:.3g}", r["bound"], f"{100 * r['share']:.1f}")
    con.print(t)
    pipe = info.get("layer_pipeline")
    for ph, total in info["phase_time_ms"].items():
        if pipe and ph == "inference":  # the operators above are one image: the pipeline's period
            con.print(f"{ph}: layer pipeline, period {pipe['period_ms']:.4g} ms per image × (batch {pipe['batch']} "
                      f"+ depth {pipe['depth']:.4g}) = {total:.4g} ms per step")
        else:
            con.print(f"{ph}: {total:.4g} ms per step")


@app.command("software")
def software_cmd(
    name: Optional[str] = typer.Argument(None, help="one software stack; default: all of them"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """The software stacks a design runs under (`--software`, a study's `software:`): each one's constants
    from dse/model/data/calibration.yaml: efficiencies, per-step / per-kernel / collective costs, fusion,
    KV-cache room and admission."""
    from dse.model.calibration import CALIBRATION_FILE, Calibration, calibration_classes, default_class, \
        load_calibration

    classes = calibration_classes() if name is None else {name: load_calibration(name)}
    if as_json:
        typer.echo(json.dumps({"default": default_class(), "file": str(CALIBRATION_FILE),
                               "classes": {k: c.model_dump(mode="json") for k, c in classes.items()}}, indent=2))
        return
    t = Table(title=f"software stacks ({CALIBRATION_FILE.name}; default {default_class()})")
    t.add_column("constant")
    for k in classes:
        t.add_column(k + (" (default)" if k == default_class() else ""), justify="right")
    for field in Calibration.model_fields:  # every constant of a stack, in the schema's order
        if field == "description":
            continue
        vals = [getattr(c, field) for c in classes.values()]
        t.add_row(field, *(("yes" if v else "no") if isinstance(v, bool) else
                           f"{v:.4g}" if isinstance(v, float) else str(v) for v in vals))
    con = console()
    con.print(t)
    for k, c in classes.items():
        con.print(f"[bold]{k}[/]: {c.description}")
