"""Select trials of a run (`pareto`, `top:N`, `trial:ID,...`) and write them as designs (YAML/JSON) or rows (CSV).

Designs are built with `Design.from_flat` from the run's knob columns, so every exported YAML/JSON
file is a valid `dse evaluate` / `dse describe` input and re-evaluates to the stored metrics.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml

from dse.errors import DseUserError
from dse.model.hardware import Design
from dse.pareto import pareto_rank
from dse.runs.front import column_name, front_mask, maximize_of, objective_matrix
from dse.runs.layout import RunMeta
from dse.runs.reader import load_trials, run_meta
from dse.evaluate.deployment import DEPLOYMENT_BY_NAME
from dse.study.knobs import POOL_PREFIX, registry_name


def select(df: pl.DataFrame, meta: RunMeta, selector: str) -> pl.DataFrame:
    """Rows picked by `pareto` | `top:N` (by non-domination rank, then the first objective) | `trial:1,5,9`."""
    sel = selector.strip()
    for o in meta.objectives:
        if not o.is_expression and column_name(df.columns, o.metric) is None:
            raise DseUserError(f"run.json: objective '{o.metric}' is not a column of this run's trials (the run "
                               "folder is damaged); rerun its study with `dse run` to rewrite run.json")
    if sel == "pareto":
        return df.filter(pl.Series(front_mask(df, meta.objectives)))
    if sel.startswith("top:"):
        try:
            n = int(sel[4:])
        except ValueError:
            raise DseUserError(f"--select {sel}: expected top:N with an integer N") from None
        if n < 1:
            raise DseUserError(f"--select {sel}: N must be at least 1 (top:N picks the N best feasible trials)")
        feas = df.filter(pl.col("feasible"))
        if feas.height == 0:
            return feas
        maximize = maximize_of(meta.objectives)
        Y = objective_matrix(feas, meta.objectives)
        rank = pareto_rank(Y, maximize)
        first = Y[:, 0] * (-1.0 if maximize[0] else 1.0)
        order = np.lexsort((first, rank))[:n]
        return feas[order.tolist()]
    if sel.startswith("trial:"):
        try:
            ids = [int(x) for x in sel[6:].split(",") if x.strip()]
        except ValueError:
            raise DseUserError(f"--select {sel}: expected trial:ID,ID,... with integer IDs") from None
        got = df.filter(pl.col("trial").is_in(ids))
        missing = sorted(set(ids) - set(got["trial"].to_list()))
        if missing:
            raise DseUserError(f"--select: no trial {', '.join(map(str, missing))} in this run "
                               f"(trials 0..{df['trial'].max()})")
        return got.sort(pl.col("trial").replace_strict({t: i for i, t in enumerate(ids)}, default=None))
    raise DseUserError(f"--select {selector!r}: expected pareto, top:N or trial:ID,...")


def _py(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, pl.Series):
        return v.to_list()
    return v


def row_design(row: dict[str, Any], knobs: list[str], name: str, tags: list[str], pool: bool = False) -> Any:
    """The Design of one results row (knob columns → Design.from_flat); with `pool`, the design of its
    searched prefill pool (`prefill.*` knobs over the main design's)."""

    flat = {k: _py(row[k]) for k in knobs if k in row and row[k] is not None
            and not k.startswith(POOL_PREFIX) and k not in DEPLOYMENT_BY_NAME}
    if pool:
        flat |= {registry_name(k): _py(row[k]) for k in knobs
                 if k in row and row[k] is not None and k.startswith(POOL_PREFIX)}
    if flat.get("chip.memory") == "none" and "chip.memory_stacks" in flat:
        flat["chip.memory_stacks"] = 0  # the model ignores stacks without memory: write what it evaluated
    flat["name"] = name
    flat["tags"] = tags
    return Design.from_flat(flat)


def design_dict(design: Any, step_decimals: dict[str, int] | None = None) -> dict[str, Any]:
    """The design as YAML/JSON data, floats rounded to their knob's search-space grid (`step_decimals`, dotted
    knob names) or else to 12 significant digits, so `clock_ghz: 1.4000000000000001` is written `1.4`."""
    step_decimals = step_decimals or {}
    data = design.model_dump(mode="json", exclude_none=True)
    for section, fields in data.items():
        if isinstance(fields, dict):
            data[section] = {k: tidy_float(v, step_decimals.get(f"{section}.{k}")) for k, v in fields.items()}
    return data


def tidy_float(value: Any, decimals: int | None = None) -> Any:
    """A float rounded to `decimals` (its grid) or else to 12 significant digits; other values unchanged."""
    if isinstance(value, list):
        return [tidy_float(v, decimals) for v in value]
    if isinstance(value, dict):
        return {k: tidy_float(v, decimals) for k, v in value.items()}
    if not isinstance(value, float) or not math.isfinite(value):
        return value
    return round(value, decimals) if decimals is not None else float(f"{value:.12g}")


def safe_file_name(name: str) -> str:
    """`name` usable as one file name inside the output folder: no separators, no leading dots (a run.json
    whose name is `../../x` must not write outside `--out`)."""
    clean = _UNSAFE.sub("_", name).lstrip(".") or "design"
    return clean[:MAX_FILE_STEM]


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
MAX_FILE_STEM = 200  # below the 255-byte file-name limit of ext4/APFS/NTFS, leaving room for `.yaml`


def _check_out(out: Path, folder: bool) -> None:
    """`--out` must be a file path (one file) or a folder path (one file per design), not the other kind."""
    if folder and out.exists() and not out.is_dir():
        raise DseUserError(f"--out {out}: is a file; give a folder for several YAML designs "
                           "(or a .yaml file name for one multi-document file)")
    if not folder and out.is_dir():
        raise DseUserError(f"--out {out}: is a folder; give a file name (e.g. {out / 'designs'}.{_EXT_HINT})")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise DseUserError(f"--out {out}: {parent} is a file, not a folder")
            break


_EXT_HINT = "yaml|json|csv"


def export(run_dir: Path, selector: str, fmt: str, out: Path) -> list[Path]:
    """Write the selected trials of `run_dir` to `out`; returns the files written."""
    run_dir, out = Path(run_dir), Path(out)
    if fmt not in ("yaml", "json", "csv"):
        raise DseUserError(f"--format {fmt}: expected yaml, json or csv")
    _check_out(out, folder=fmt == "yaml" and out.suffix not in (".yaml", ".yml"))
    meta = run_meta(run_dir)
    df = load_trials(run_dir)
    rows = select(df, meta, selector)
    if rows.height == 0:
        raise DseUserError(f"{run_dir}: --select {selector} matched no feasible trial; nothing exported")
    study = meta.name
    metrics = [o.metric for o in meta.objectives]
    if fmt == "csv":
        out.parent.mkdir(parents=True, exist_ok=True)
        keep = [c for c in rows.columns if rows[c].dtype != pl.Object]
        flat = rows.select(keep).with_columns(
            [pl.col(c).cast(pl.List(pl.String)).list.join(";") for c in keep if isinstance(rows[c].dtype, pl.List)])
        flat.write_csv(out)
        return [out]
    designs = []
    for row in rows.iter_rows(named=True):
        src = f"{row['study']}-" if "study" in row and row["study"] else f"{study}-"
        name = safe_file_name(f"{src}t{row['trial']}")
        tags = [study] + (["pareto"] if row.get("pareto") else [])
        d = row_design(row, meta.knobs, name, tags)
        comment = f"trial {row['trial']} of study {study}: " + ", ".join(
            f"{m}={_py(row[m]):.6g}" for m in metrics if m in row and isinstance(_py(row[m]), (int, float)))
        comment += "".join(f", deployed with {k}={_py(row[k])}" for k in meta.knobs    # not design fields
                           if k in DEPLOYMENT_BY_NAME and row.get(k) is not None)
        if meta.software is not None:  # the metrics above are this stack's: `dse evaluate --software` repeats them
            comment += f", software stack {meta.software} (dse evaluate --software {meta.software})"
        designs.append((name, design_dict(d, meta.step_decimals), comment))
        if any(k.startswith(POOL_PREFIX) for k in meta.knobs):   # the searched prefill pool's design beside it
            p = row_design(row, meta.knobs, f"{name}-prefill", tags + ["prefill-pool"], pool=True)
            decimals = {registry_name(k): v for k, v in sorted(meta.step_decimals.items(),
                                                               key=lambda kv: kv[0].startswith(POOL_PREFIX))}
            designs.append((f"{name}-prefill", design_dict(p, decimals), f"prefill pool of {name}"))
    if fmt == "json":
        out.parent.mkdir(parents=True, exist_ok=True)
        body = designs[0][1] if len(designs) == 1 else [d for _, d, _ in designs]
        out.write_text(json.dumps(body, indent=2) + "\n")
        return [out]
    if fmt != "yaml":
        raise DseUserError(f"--format {fmt}: expected yaml, json or csv")
    if out.suffix in (".yaml", ".yml"):
        out.parent.mkdir(parents=True, exist_ok=True)
        text = "\n---\n".join(f"# {c}\n" + yaml.safe_dump(d, sort_keys=False) for _, d, c in designs)
        out.write_text(text)
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, d, c in designs:
        p = out / f"{name}.yaml"
        if p.resolve().parent != out.resolve():  # never outside --out, whatever the stored names say
            raise DseUserError(f"{run_dir}: design name {name!r} would be written outside {out}")
        p.write_text(f"# {c}\n" + yaml.safe_dump(d, sort_keys=False))
        paths.append(p)
    return paths
