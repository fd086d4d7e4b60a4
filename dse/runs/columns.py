"""Column conventions of the run tables: each value stored once, integers as integers, units in the metadata.

* A metric that only repeats a knob (`sram_mb` beside `chip.sram_mb`) is dropped; the knob column is the
  source, and readers accept the bare name as an alias (`front.column_name`).
* Integer metrics (tp, batch, chips_used, ...) are stored as Int64 when the metric registry declares them
  integers and every value is integral.
* Units: `{column: unit}` JSON under the Parquet file-metadata key `UNITS_KEY`, from the metric and knob
  registries, else from the unit suffix of the column name (names carry units: `sram_mb`, `mem_bw_tbps`).
"""

from __future__ import annotations

import functools
import json
from typing import Any, Sequence

import numpy as np
import polars as pl

from dse.evaluate.metrics import metric_info
from dse.runs.layout import INTERNAL_COLUMNS, KNOB_PREFIXES, UNITS_KEY

#: unit of a column-name suffix (the project's naming rule: units in names), for the columns the metric
#: registry does not declare (knobs, e.g. `chip.sram_mb`, `chip.clock_ghz`)
SUFFIX_UNITS = {"usd": "US$", "ms": "ms", "s": "s", "w": "W", "mb": "MB", "gb": "GB", "tbps": "TB/s",
                "mm2": "mm²", "ghz": "GHz", "tflops": "TFLOP/s", "j": "J", "nm": "nm",
                "w_per_mm2": "W/mm²", "flop_per_byte": "FLOP/byte", "usd_per_mtok": "US$ per 1M tokens",
                "j_per_unit": "J per unit", "tokens_per_s": "tokens/s", "images_per_s": "images/s",
                "per_user": "tokens/s per user"}


@functools.lru_cache(maxsize=4096)
def _info(name: str) -> Any:
    """The metric registry's entry for a column (None for knobs, bookkeeping and unknown columns); the
    registry is static, so the answer is cached per name (a run writes the same columns every part)."""
    try:
        return metric_info(name)
    except (KeyError, ValueError):
        return None


def is_integer_metric(name: str) -> bool:
    """The metric registry declares `name` an integer (count) metric."""
    info = _info(name)
    return info is not None and info.metric.dtype == "int"


@functools.lru_cache(maxsize=4096)
def unit_of(name: str) -> str | None:
    """Unit of a column: the registry's, else the unit suffix of its name (None for unitless columns)."""
    info = _info(name)
    if info is not None:
        return info.unit or None
    leaf = name.rsplit(".", 1)[-1]
    for suf in sorted(SUFFIX_UNITS, key=len, reverse=True):
        if leaf.endswith("_" + suf) or leaf == suf:
            return SUFFIX_UNITS[suf]
    return None


def parquet_metadata(columns: Sequence[str]) -> dict[str, str]:
    units = {c: u for c in columns if (u := unit_of(c))}
    return {UNITS_KEY: json.dumps(units, ensure_ascii=False)} if units else {}


def units_of_file(path: Any) -> dict[str, str]:
    """{column: unit} stored in a Parquet file written by dse ({} for older files)."""
    meta = pl.read_parquet_metadata(path)
    try:
        return json.loads(meta.get(UNITS_KEY, "{}"))
    except json.JSONDecodeError:
        return {}


def duplicate_metrics(df: pl.DataFrame) -> list[str]:
    """Bare metric columns that repeat a knob column value for value (`sram_mb` = `chip.sram_mb`)."""
    out = []
    schema = df.schema
    for c in df.columns:
        for p in KNOB_PREFIXES:
            k = p + c
            if k in schema and schema[c].is_numeric() and schema[k].is_numeric():
                a = df[c].cast(pl.Float64).fill_null(np.nan).to_numpy()
                b = df[k].cast(pl.Float64).fill_null(np.nan).to_numpy()
                have = ~np.isnan(a)  # rows of a resumed older run may lack the bare column
                if np.array_equal(a[have], b[have], equal_nan=True):
                    out.append(c)
    return out


def without_internal(df: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame | pl.LazyFrame:
    """The rows without their bookkeeping columns (`layout.INTERNAL_COLUMNS`: the Optuna records); eager or lazy."""
    return df.drop(INTERNAL_COLUMNS, strict=False)


def tidy(df: pl.DataFrame) -> pl.DataFrame:
    """Drop metric columns that repeat a knob; store registry-integer metrics as Int64."""
    df = df.drop(duplicate_metrics(df))
    casts = []
    for c, t in df.schema.items():
        if t.is_float() and is_integer_metric(c):
            v = df[c].to_numpy()
            if np.isfinite(v).all() and (v == np.round(v)).all():
                casts.append(pl.col(c).cast(pl.Int64))
    return df.with_columns(casts) if casts else df
