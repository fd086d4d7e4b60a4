"""`dse catalog`, `dse describe` and `dse schema`: reference chips, one design's derived figures, area,
cost, power, and the JSON Schema of the input files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from dse.cli_app import app
from dse.commands._console import console
from dse.schemas import SCHEMA_KINDS, json_schema, schema_file_name


def _technology(tech_path: Optional[Path]):
    from dse.model.technology import load_technology

    return load_technology(tech_path) if tech_path else load_technology()


def load_design(spec: str, tech=None):
    """A `Design` from a catalog name, a YAML file or `FILE.yaml#NAME`, validated against `tech`."""
    from dse.designs import load_design as resolve
    from dse.model.hardware import use_technology

    with use_technology(tech):
        return resolve(spec)


def describe_designs(designs: list, tech, mix: str | None = None) -> list[dict[str, Any]]:
    """Derived figures + area / cost / power breakdowns for each design (one vectorized pass). With a
    `mix`, the hourly TCO is priced at the power the system draws on that mix (its `power_w`, throttled
    by a `tdp_w` cap as `dse evaluate` does); without one, or where the mix cannot run, at peak power."""
    from dse.model.area import chip_area
    from dse.model.arrays import DesignArrays
    from dse.model.cost import chip_cost, tco_usd_per_hour
    from dse.model.power import chip_power

    arr = DesignArrays.from_designs(designs, tech)
    area = chip_area(arr)
    cost = chip_cost(arr, area)
    power = chip_power(arr, area)
    tco_power = np.asarray(power.system_power_w, float)
    basis = np.full(len(designs), "peak power", dtype=object)
    if mix is not None:
        from dse.evaluate import evaluate

        workload = np.asarray(evaluate(arr, mix, tech)["power_w"], float)
        ran = workload > 0  # 0 where the mix cannot run on the design
        tco_power = np.where(ran, workload, tco_power)
        basis[ran] = f"workload power on mix {mix}"
        basis[~ran] = f"peak power (mix {mix} cannot run)"
    tco = tco_usd_per_hour(cost.system_usd, tco_power, tech)
    out = []
    for i, d in enumerate(designs):
        derived = arr.row(i)
        feasible, reason = bool(area.feasible[i]), str(area.reason[i])
        derived.pop("valid"), derived.pop("reason")
        out.append({"name": d.name, "feasible": feasible, "reason": reason, "design": d.model_dump(),
                    "derived": derived, "area_mm2": area.row(i), "cost_usd": cost.row(i),
                    "power_w": power.row(i), "tco_usd_per_hour": float(tco[i]),
                    "tco_power_w": float(tco_power[i]), "tco_basis": str(basis[i])})
        for k in ("feasible", "reason"):
            out[-1]["area_mm2"].pop(k)
    return out


@app.command("catalog")
def catalog_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    tech_path: Optional[Path] = typer.Option(None, "--tech", help="Technology override YAML."),
) -> None:
    """List the reference chips with their derived peak, bandwidth, capacity, area, cost and TDP."""
    from dse.catalog import list_catalog, load_catalog_design, published
    from dse.model.hardware import use_technology

    tech = _technology(tech_path)
    with use_technology(tech):
        designs = [load_catalog_design(n) for n in list_catalog()]
    rows = describe_designs(designs, tech)
    if as_json:
        payload = {r["name"]: {**_summary(r), "published": published(r["name"])} for r in rows}
        typer.echo(json.dumps(payload, indent=2))
        return
    from rich.table import Table

    table = Table(title="dse reference catalog (dse model figures, per chip)")
    for col in ("design", "peak TFLOPS", "TB/s", "GB", "SRAM MB", "knee F/B", "die mm²", "cost $", "TDP W"):
        table.add_column(col, justify="left" if col == "design" else "right", no_wrap=col == "design")
    for r in rows:
        s = _summary(r)
        table.add_row(r["name"], f"{s['peak_tflops']:,.0f}" + ("" if s["peak_precision"] == "bf16" else f" {s['peak_precision']}"), f"{s['mem_bw_tbps']:.2f}",
                      f"{s['mem_gb']:.0f}", f"{s['sram_mb']:,.0f}", f"{s['knee_flop_per_byte']:.0f}",
                      s["die"], f"{s['chip_cost_usd']:,.0f}", f"{s['tdp_w']:,.0f}")
    console().print(table)


def _summary(r: dict) -> dict[str, Any]:
    peaks = r["derived"]["peak_tflops"]
    prec = "bf16" if "bf16" in peaks else max(peaks, key=peaks.get, default="bf16")
    a = r["area_mm2"]
    die = f"{a['die_mm2']:,.0f}" if a["num_dies"] == 1 else f"{a['num_dies']}×{a['die_mm2']:,.0f}"
    return {"peak_tflops": peaks.get(prec, 0.0), "peak_precision": prec, "mem_bw_tbps": r["derived"]["mem_bw_tbps"],
            "mem_gb": r["derived"]["mem_gb"], "sram_mb": r["derived"]["sram_mb"],
            "knee_flop_per_byte": r["derived"]["knee_flop_per_byte"], "die": die, "die_mm2": a["die_mm2"],
            "num_dies": a["num_dies"], "chip_cost_usd": r["cost_usd"]["chip_usd"], "tdp_w": r["power_w"]["tdp_w"],
            "feasible": r["feasible"], "reason": r["reason"]}


@app.command("describe")
def describe_cmd(
    design: str = typer.Argument(..., help="A catalog name (see `dse catalog`) or a design YAML file."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object and nothing else."),
    tech_path: Optional[Path] = typer.Option(None, "--tech", help="Technology override YAML."),
    mix: str = typer.Option("balanced", "--mix", help="Built-in mix whose workload power prices the TCO."),
) -> None:
    """All derived figures of one design: peaks, bandwidths, area, cost and power breakdowns."""
    from dse.catalog import published, resolve_name
    from dse.workloads.scenarios import mix_names

    if mix not in mix_names():
        from dse.errors import DseUserError

        raise DseUserError(f"--mix {mix!r}: not a built-in mix (choose from {', '.join(mix_names())})")
    tech = _technology(tech_path)
    d = load_design(design, tech)
    (r,) = describe_designs([d], tech, mix=mix)
    if not Path(design).exists() and resolve_name(design):  # a catalog name or alias, any case
        r["published"] = published(design)
    if as_json:
        typer.echo(json.dumps(r, indent=2))
        return
    _print_rich(r)


def _print_rich(r: dict) -> None:
    from rich.table import Table

    con = console()
    status = "[green]feasible[/green]" if r["feasible"] else f"[red]infeasible[/red]: {r['reason']}"
    con.print(f"[bold]{r['name']}[/bold] — {status}")
    der = r["derived"]
    t = Table(title="derived (per chip)", show_header=False)
    for p, v in der["peak_tflops"].items():
        t.add_row(f"peak {p} TFLOPS", f"{v:,.1f}")
    for k in ("macs", "mem_bw_tbps", "mem_gb", "sram_mb", "sram_tbps", "knee_flop_per_byte"):
        t.add_row(k, f"{der[k]:,.3g}" if isinstance(der[k], float) else f"{der[k]:,}")
    con.print(t)
    for title, block in (("area mm²", r["area_mm2"]), ("cost USD", r["cost_usd"]), ("power W", r["power_w"])):
        t = Table(title=title, show_header=False)
        for k, v in block.items():
            t.add_row(k, f"{v:,.3f}" if k == "yield_" else f"{v:,.1f}" if isinstance(v, float) else str(v))
        con.print(t)
    con.print(f"TCO ≈ ${r['tco_usd_per_hour']:,.2f}/hour for the system at {r['tco_power_w']:,.0f} W "
              f"({r['tco_basis']})")
    if "published" in r:
        con.print("published:", {k: v for k, v in r["published"].items() if k != "sources"})


@app.command("schema")
def schema_cmd(
    kind: str = typer.Argument(..., help=f"What to describe: {', '.join(SCHEMA_KINDS)}, or `all` (with --out DIR)."),
    tech_path: Optional[Path] = typer.Option(None, "--tech", help="Technology override YAML (its names are allowed)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write to this file (a folder for `all`) instead of printing."),
) -> None:
    """Print the JSON Schema of an input file kind (e.g. `dse schema study`), derived from its registry.

    Editors validate and complete YAML with it: put `# yaml-language-server: $schema=PATH` on the first line.
    """
    from dse.config import suggest
    from dse.errors import DseUserError

    kinds = list(SCHEMA_KINDS) if kind == "all" else [kind]
    if kind not in SCHEMA_KINDS and kind != "all":
        raise DseUserError(suggest(kind, [*SCHEMA_KINDS, "all"], "schema kind"))
    if kind == "all" and out is None:
        raise DseUserError("dse schema all: give --out DIR (one KIND.schema.json per kind is written there)")
    tech = _technology(tech_path)
    texts = {k: json.dumps(json_schema(k, tech), indent=2, ensure_ascii=False) + "\n" for k in kinds}
    if out is None:
        typer.echo(texts[kind], nl=False)
        return
    if kind == "all":
        if out.exists() and not out.is_dir():
            raise DseUserError(f"--out {out}: is a file; `dse schema all` writes a folder of schemas")
        out.mkdir(parents=True, exist_ok=True)
        targets = {k: out / schema_file_name(k) for k in kinds}
    else:
        if out.is_dir():
            raise DseUserError(f"--out {out}: is a folder; give a file name such as {out / schema_file_name(kind)}")
        targets = {kind: out}
    for k, path in targets.items():
        path.write_text(texts[k], encoding="utf-8")
    typer.echo(f"wrote {len(targets)} schema file(s): {', '.join(str(p) for p in targets.values())}")


@app.command("knobs")
def knobs_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    tech_path: Optional[Path] = typer.Option(None, "--tech", help="Technology override YAML (its names are allowed)."),
) -> None:
    """List every design knob (from the knob registry): type, unit, bounds, allowed names, default."""
    from dse.model.knobs import KNOBS

    tech = _technology(tech_path)
    rows = {k.name: {"type": k.type_name, "unit": k.unit, "bounds": k.rule() if k.numeric or k.type is dict else None,
                     "allowed": k.allowed(tech), "default": k.default_value(), "unset_means": k.none_means,
                     "label": k.label, "description": k.description, "default_source": k.default_source}
            for k in KNOBS}
    if as_json:
        typer.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    from rich.table import Table

    table = Table(title="design knobs (YAML: chip: / system: sections; search spaces: dotted names)")
    for col in ("knob", "type", "unit", "bounds / allowed", "default", "description"):
        table.add_column(col, no_wrap=col == "knob")
    for name, r in rows.items():
        allowed = ", ".join(r["allowed"]) if r["allowed"] else ""
        default = "unset: " + r["unset_means"] if r["default"] is None and r["unset_means"] else str(r["default"])
        table.add_row(name, r["type"], r["unit"] or "", r["bounds"] or allowed, default, r["description"])
    console().print(table)
