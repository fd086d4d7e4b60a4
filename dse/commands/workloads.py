"""`dse models`, `dse models show`, `dse scenarios`, `dse mixes`: the workloads a study can name."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from dse.cli_app import app
from dse.commands._console import console

models_app = typer.Typer(help="Built-in models; `dse models show NAME|PATH` for one model's figures.",
                         invoke_without_command=True, no_args_is_help=False)
app.add_typer(models_app, name="models")


def _b(n: float) -> str:
    """Parameters in B / M."""
    if n >= 1e9:
        return f"{n / 1e9:,.2f}B"
    return f"{n / 1e6:,.1f}M" if n >= 1e6 else f"{n / 1e3:,.1f}K"


@models_app.callback()
def models_cmd(ctx: typer.Context,
               as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table.")) -> None:
    """List the built-in models with their parameter counts (any model YAML or config.json works too)."""
    if ctx.invoked_subcommand is not None:
        return
    from dse.workloads.shapes import model_names
    from dse.workloads.modelfile import load_model_shape
    from dse.workloads.summary import model_summary

    rows = [model_summary(load_model_shape(n)) for n in model_names()]
    if as_json:
        typer.echo(json.dumps({r["name"]: r for r in rows}, indent=2))
        return
    t = Table(title="built-in models (also: a model YAML, a Hugging Face config.json, or an inline mapping)")
    for col in ("model", "family", "params", "active", "layers", "hidden", "heads/kv", "experts", "KV B/token bf16"):
        t.add_column(col, justify="left" if col in ("model", "family") else "right")
    for r in rows:
        s = r["shape"]
        experts = f"{s.get('active_experts', 1)}/{s['experts']}" if s.get("experts", 1) > 1 else "-"
        heads = f"{s['heads']}/{s['kv_heads']}" if s.get("heads") else "-"
        t.add_row(r["name"], r["family"], _b(r["params"]), _b(r["active_params"]), str(s.get("layers", "-")),
                  str(s.get("hidden", "-")), heads, experts,
                  f"{r['kv_bytes_per_token']:,.0f}" if r["family"] == "llm" else "-")
    console().print(t)


@models_app.command("show")
def models_show(spec: str = typer.Argument(..., help="built-in name, model YAML, config.json or its folder"),
                context: int = typer.Option(8192, "--context", min=1, help="tokens per sequence for the KV figures"),
                as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """The parsed shape of a model, its total and active parameters, weight bytes at each precision
    and KV-cache bytes per token."""
    from dse.workloads.modelfile import load_model_shape
    from dse.workloads.summary import model_summary

    r = model_summary(load_model_shape(spec), context=context)
    if as_json:
        typer.echo(json.dumps(r, indent=2))
        return
    con = console()
    con.print(f"[bold]{r['name']}[/] ({r['family']}): {_b(r['params'])} parameters, {_b(r['active_params'])} "
              f"active per token · source: {r['source']}")
    t = Table(title="shape", show_header=False)
    t.add_column("field")
    t.add_column("value", justify="right")
    for k, v in r["shape"].items():
        if k not in ("name", "source", "cnn_layers"):
            t.add_row(k, str(v))
    if r["shape"].get("cnn_layers"):
        t.add_row("cnn_layers", f"{len(r['shape']['cnn_layers'])} layers")
    con.print(t)
    w = Table(title="weights")
    w.add_column("format")
    w.add_column("bits/weight", justify="right")
    w.add_column("GB (2^30 B, as memory)", justify="right")
    for fmt, row in r["weight_gb"].items():
        w.add_row(fmt, f"{row['bits_per_weight']:g}", f"{row['gb']:,.2f}")
    con.print(w)
    if r["family"] == "llm":
        con.print(f"KV cache per token (all layers, 16-bit): {r['kv_bytes_per_token']:,.0f} B"
                  + (f" uncapped; {r['kv_bytes_per_token_at_context']:,.0f} B averaged over a {context}-token "
                     f"context (sliding-window layers keep ≤ {r['shape'].get('sliding_window')} tokens)"
                     if r["shape"].get("sliding_window") else "")
                  + f" · {r['kv_gb_at_context']:,.3g} GB per {context}-token sequence")


@app.command("scenarios")
def scenarios_cmd(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """List the built-in scenarios (model, batch policy, lengths, precision, SLOs)."""
    from dse.workloads.scenarios import load_scenario, scenario_names

    rows = [load_scenario(n) for n in scenario_names()]
    if as_json:
        typer.echo(json.dumps({s.name: s.model_dump(mode="json", exclude_defaults=True) for s in rows}, indent=2))
        return
    t = Table(title="built-in scenarios")
    for col in ("scenario", "model", "kind", "batch", "prompt/output", "precision", "SLOs", "goal"):
        t.add_column(col)
    for s in rows:
        slo = ", ".join(f"{k} {getattr(s, k):g}" for k in ("ttft_ms", "tpot_ms", "latency_ms") if getattr(s, k))
        batch = str(s.batch) if isinstance(s.batch, int) else f"{s.batch.min}..{s.batch.max}"
        lens = f"{s.prompt_len}/{s.output_len}" if s.kind == "llm" else "-"
        t.add_row(s.name, s.model.name, s.kind, batch, lens, s.precision.label, slo or "-", s.goal)
    console().print(t)


@app.command("mixes")
def mixes_cmd(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """List the built-in mixes and the mix files under studies/mixes/ with their weighted scenarios."""
    from dse.workloads.scenarios import load_mix, mix_files, mix_names

    names = list(mix_names()) + [n for n in mix_files() if n not in mix_names()]
    mixes = {n: load_mix(n) for n in names}
    if as_json:
        typer.echo(json.dumps({n: {"scenarios": {e.scenario.name: e.weight for e in m.scenarios},
                                   "reference_design": m.reference_design, "file": str(mix_files().get(n, ""))}
                               for n, m in mixes.items()}, indent=2))
        return
    t = Table(title="mixes (a study's `mix:` may also be a YAML file or an inline mapping)")
    for col in ("mix", "scenarios (weight)", "reference", "file"):
        t.add_column(col)
    for n, m in mixes.items():
        t.add_row(n, ", ".join(f"{e.scenario.name} ({e.weight:g})" for e in m.scenarios), m.reference_design,
                  str(mix_files()[n].name) if n in mix_files() else "built-in")
    console().print(t)
