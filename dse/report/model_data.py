"""What the dashboard asks the performance model: reference-chip metrics, and per-operator rows and roofs
for a few dozen picked front designs (re-evaluated here; the study stores only per-design metrics).

Interface assumed from dse.model (docs/ARCHITECTURE.md):
- `dse.evaluate.evaluate(DesignArrays, mix) -> dict[str, array]` (reference chips);
- `dse.evaluate.operator_breakdown(design, scenario)` → a dict with design-level roofs
  (peak_tflops at the scenario's compute precision, mem_bw_tbps, sram_bw_tbps, compute_precision,
  mapping) and `operators`: rows with phase, name, kind, flops, bytes, intensity_flop_per_byte (per
  byte moved: off-chip, or SRAM when resident), attainable_tflops, time_s (count included),
  bound (one of dse.model.perf.BOUNDS) and each bound's time (`<field>_s`, dse.model.perf.TIME_FIELDS).
  Bare operator rows (frame or list of dicts) are accepted too.
Anything missing degrades to a note on the page, never a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from dse.model.perf import TIME_FIELDS
from dse.pareto import crowding_distance
from dse.report.labels import title_of
from dse.report.rundata import RunData, knob_columns, objective_matrix
from dse.report.spec import Objective, RooflineView

OP_COLUMNS = ["name", "kind", "flops", "bytes", "intensity", "attainable_tflops", "time_s", "bound",
              *(f"{f}_s" for f in TIME_FIELDS.values())]


def mix_of(run: RunData):
    """The run's workload mix (built-in name or inline mapping in study.yaml), or None."""
    return run.mix()


def technology_of(run: RunData | None):
    """The technology the run was evaluated with (its override merged over the default)."""
    from dse.model.technology import default_technology

    return run.technology() if run is not None else default_technology()


def reference_metrics(names: list[str] | str | None, mix, tech=None) -> tuple[pl.DataFrame | None, list[str]]:
    """Metrics of catalog chips on `mix` with `tech` (the run's technology; default when None), same columns
    as results.parquet, and notes on what was left out."""
    if not names or mix is None:
        return None, []
    from dse.catalog import list_catalog, load_catalog_design
    from dse.model.arrays import DesignArrays
    from dse.evaluate import evaluate
    from dse.model.technology import default_technology

    tech = tech or default_technology()
    names = list_catalog() if names == "all" else list(names)
    designs = [load_catalog_design(n) for n in names]
    out = evaluate(DesignArrays.from_designs(designs, tech), mix, tech)
    cols: dict[str, Any] = {"name": names}
    for k, v in out.items():
        v = np.asarray(v)
        if v.dtype.kind in "biuf":
            cols[k] = v.astype(float) if v.dtype.kind != "b" else v
        else:
            cols[k] = v.astype(str)
    df = pl.DataFrame(cols)
    notes = [f"{r['name']}: {r['reason']}" for r in df.filter(~pl.col("feasible")).iter_rows(named=True)]
    return df.filter(pl.col("feasible")), notes


def pick_designs(df: pl.DataFrame, front: np.ndarray, objs: list[Objective], k: int) -> list[tuple[int, str]]:
    """Up to `k` front rows spanning the front: the best row per objective, then the most isolated
    (crowding distance) ones. Returns (row index, role) pairs, role like "best mix.throughput"."""
    idx = np.flatnonzero(front)
    if len(idx) == 0:
        return []
    Y = objective_matrix(df[idx], objs)
    maximize = [o.direction == "maximize" for o in objs]
    picks: dict[int, str] = {}
    for j, o in enumerate(objs):
        col = np.where(np.isfinite(Y[:, j]), Y[:, j], -np.inf if maximize[j] else np.inf)
        best = int(np.argmax(col) if maximize[j] else np.argmin(col))
        picks.setdefault(int(idx[best]), f"best {o.metric}")
    cd = crowding_distance(Y, maximize)
    cd = np.where(np.isinf(cd), 1e300, cd)
    for r in np.argsort(-cd, kind="stable"):
        if len(picks) >= k:
            break
        picks.setdefault(int(idx[r]), "front")
    return list(picks.items())[:k]


def design_from_row(row: dict, name: str):
    """A `Design` from a results row's knob columns (null knobs take their defaults)."""
    from dse.model.hardware import Design

    flat = {k: v for k, v in row.items() if k.startswith(("chip.", "system.")) and v is not None}
    flat["name"] = name
    return Design.from_flat(flat)


def _as_frame(result) -> tuple[pl.DataFrame, dict]:
    """Normalise `operator_breakdown`'s result: a dict with an `operators` list (+ roofs), or bare rows."""
    meta: dict = {}
    if isinstance(result, dict) and "operators" in result:
        meta = {k: v for k, v in result.items() if k != "operators"}
        rows = result["operators"]
    else:
        rows = result
    df = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(rows)
    if "intensity" not in df.columns and "intensity_flop_per_byte" in df.columns:
        df = df.rename({"intensity_flop_per_byte": "intensity"})
    return df, meta


def operator_frame(designs: dict[str, Any], scenarios: list, techs: dict[str, Any] | None = None
                   ) -> tuple[pl.DataFrame | None, pl.DataFrame | None, list[str]]:
    """Per-operator rows and roofs of every (design, scenario) from `operator_breakdown`, or None and notes.

    Roofs (design, scenario, precision, peak_tflops, mem_tbps, sram_tbps, mapping) come from the result's
    design-level fields when it has them, else from the hardware model at bf16.
    """
    try:
        from dse.evaluate import operator_breakdown
    except ImportError:
        return None, None, ["roofline and time breakdown need dse.evaluate.operator_breakdown, "
                            "which this installation does not provide"]
    parts, roofs, notes = [], [], []
    for label, design in designs.items():
        for sc in scenarios:
            name = getattr(sc, "name", str(sc))
            try:
                df, meta = _as_frame(operator_breakdown(design, sc, tech=(techs or {}).get(label)))
            except Exception as exc:  # one design may not run a scenario at all; keep the others
                notes.append(f"{label} on {name}: {exc}")
                continue
            if len(df) == 0:
                continue
            keep = [c for c in [*OP_COLUMNS, "phase", "count"] if c in df.columns]
            parts.append(df.select(keep).with_columns(
                pl.lit(label).alias("design"), pl.lit(name).alias("scenario"),
                pl.lit(str(meta.get("mapping", ""))).alias("mapping")))
            if "peak_tflops" in meta:
                roofs.append({"design": label, "scenario": name,
                              "precision": str(meta.get("compute_precision", "bf16")),
                              "peak_tflops": float(meta["peak_tflops"]),
                              "mem_tbps": float(meta.get("mem_bw_tbps") or 0.0),
                              "sram_tbps": float(meta.get("sram_bw_tbps") or 0.0),
                              "mapping": str(meta.get("mapping", ""))})
    if not parts:
        return None, None, notes or ["no operator rows for the picked designs"]
    ops = pl.concat(parts, how="diagonal_relaxed")
    if roofs:
        roof_df = pl.DataFrame(roofs)
    else:
        roof_df = roofs_of(designs, techs).join(ops.select("design", "scenario").unique(), on="design").with_columns(
            pl.lit("bf16").alias("precision"), pl.lit("").alias("mapping"))
    return ops, roof_df, notes


def roofs_of(designs: dict[str, Any], techs: dict[str, Any] | None = None) -> pl.DataFrame:
    """Per design: bf16 peak TFLOP/s, off-chip and SRAM TB/s (per chip) from the hardware model, each
    design with its run's technology (`techs`; default when absent)."""
    from dse.model.arrays import DesignArrays
    from dse.model.technology import default_technology

    labels = list(designs)
    rows = []
    for lab in labels:
        tech = (techs or {}).get(lab) or default_technology()
        r = DesignArrays.from_designs([designs[lab]], tech).row(0)
        rows.append({"design": lab, "peak_tflops": float(r["peak_tflops"].get("bf16", 0.0)),
                     "mem_tbps": float(r.get("mem_bw_tbps") or 0.0), "sram_tbps": float(r.get("sram_tbps") or 0.0)})
    return pl.DataFrame(rows, schema={"design": pl.String, "peak_tflops": pl.Float64, "mem_tbps": pl.Float64,
                                      "sram_tbps": pl.Float64})


def picked_designs(run: RunData, front: np.ndarray, objs: list[Objective], k: int,
                   labels: dict[str, str] | None = None) -> tuple[dict[str, Any], dict[str, dict], list[str]]:
    """Designs for the roofline / breakdown dropdown: {label: Design}, {label: results row}, notes."""
    df = run.results
    knobs = knob_columns(df)
    out, rows, notes = {}, {}, []
    for i, role in pick_designs(df, front, objs, k):
        row = df.row(i, named=True)
        label = f"{run.name}#{row.get('trial', i)}"
        if role != "front":
            label += f" · best {title_of(role.split(' ', 1)[1], labels).split(' (')[0]}"
        try:
            out[label] = design_from_row({k: row[k] for k in knobs}, label)
            rows[label] = row
        except Exception as exc:
            notes.append(f"{label}: cannot rebuild the design from its knobs: {exc}")
    return out, rows, notes


def reference_names(explorer: list[str] | str | None, dropdown: list[str]) -> list[str]:
    """Catalog names needed by the page: the explorer's markers ("all" = whole catalog) and the dropdown's."""
    names: list[str] = []
    if explorer == "all":
        from dse.catalog import list_catalog

        names += list_catalog()
    elif explorer:
        names += list(explorer)
    return list(dict.fromkeys(names + list(dropdown)))


@dataclass
class OperatorData:
    """Designs of the roofline / breakdown dropdown with their operator rows and roofs."""

    designs: dict[str, Any] = field(default_factory=dict)
    techs: dict[str, Any] = field(default_factory=dict)
    rows: dict[str, dict] = field(default_factory=dict)
    ops: pl.DataFrame | None = None
    roofs: pl.DataFrame | None = None
    scenarios: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def operator_data(runs: list[RunData], fronts: dict[str, np.ndarray], objs: list[Objective], view: RooflineView,
                  labels: dict[str, str] | None, ref_df: pl.DataFrame | None) -> OperatorData:
    """Pick front designs over the runs (+ reference chips), re-evaluate them per scenario of the first run's mix."""
    out = OperatorData()
    per_run = max(2, view.designs // max(len(runs), 1))
    for r in runs:
        d, rows, notes = picked_designs(r, fronts[r.name], objs, per_run, labels)
        tech = technology_of(r)
        out.techs.update({k: tech for k in d})
        out.designs.update(d)
        out.rows.update(rows)
        out.notes += notes
    for name in view.reference_designs:
        try:
            from dse.catalog import load_catalog_design

            label = f"{name} (reference)"
            out.designs[label] = load_catalog_design(name)
            out.techs[label] = technology_of(runs[0] if runs else None)
            if ref_df is not None and name in ref_df["name"].to_list():
                out.rows[label] = ref_df.filter(pl.col("name") == name).row(0, named=True)
        except Exception as exc:
            out.notes.append(f"reference design {name}: {exc}")
    try:
        mix = mix_of(runs[0])
    except Exception as exc:
        out.notes.append(f"roofline and time breakdown unavailable: {exc}")
        return out
    scenarios = [e.scenario for e in mix.scenarios] if mix is not None else []
    if view.scenarios:
        scenarios = [s for s in scenarios if s.name in view.scenarios]
    out.scenarios = [s.name for s in scenarios]
    if not scenarios:
        out.notes.append("no workload scenarios (the run's study.yaml names no mix): no roofline or time breakdown")
        return out
    if not out.designs:
        return out
    ops, roofs, notes = operator_frame(out.designs, scenarios, out.techs)
    if notes:
        out.notes.append(f"{len(notes)} of {len(out.designs) * len(scenarios)} (design, scenario) pairs could not be "
                         f"re-evaluated for the roofline: " + "; ".join(notes[:4]) + ("; ..." if len(notes) > 4 else ""))
    if ops is not None:  # offer only designs that have operator rows, in pick order
        have = set(ops["design"].unique().to_list())
        out.designs = {k: v for k, v in out.designs.items() if k in have}
    out.ops, out.roofs = ops, roofs
    return out
