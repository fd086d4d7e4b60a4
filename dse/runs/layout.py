"""The run-folder format, declared once: file names and the schemas of `run.json` and `summary.json`.

A run folder (`runs/<study>/`) holds
  parts/generations.dlog     the array NSGA-II's generations, one record each appended to this one file (its
                             columns as raw arrays, dse.runs.colpart; dse.runs.partlog); the system of record
                             (runs of earlier versions have a parts/part-NNNNNN.dcol file per generation: they
                             read and resume alike)
  parts/part-NNNNNN.arrows   one per batch of the other samplers: an Arrow IPC stream (lz4), written
                             atomically; the system of record (studies run by earlier versions have .arrow
                             Arrow IPC files or .parquet parts: they read and resume alike)
  parts/part-NNNNNN.parquet  one per grid shard (Parquet, streamed into results.parquet)
  results.parquet            every trial (rebuilt from the parts by `finalize`), with a `pareto` flag
  pareto.parquet             the feasible non-dominated rows of results.parquet
  pareto_nominal.parquet     the same on the nominal metrics, when the objectives read robust columns
  run.json                   `RunMeta`: what defines the trials, incl. the hypervolume reference point
  summary.json               `Summary`: counts, front size, hypervolume, best design per objective
  study.yaml                 the study file as given
  technology.yaml            the study's technology override (a copy), when it has one
  journal.log                the Optuna mirror (optuna-dashboard), when the sampler uses Optuna
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dse.expr import ExprError, parse

PARTS_DIR = "parts"
PART_RE = re.compile(r"^part-(\d{6,})\.(parquet|arrows|arrow|dcol)$")
#: part formats by file suffix. A study's batch is an Arrow IPC stream (`.arrows`, lz4; `pl.read_ipc_stream` reads
#: it): ~0.4 ms to write 100 trials (77 columns) against ~0.8 ms as an Arrow IPC file, whose writer in polars 2
#: runs the streaming engine per call (its threads cost more again on a busy machine: measured 10,000 trials,
#: 100 per batch, 0.3-0.4 s less wall time with streams) and ~6 ms as zstd Parquet, at about the same size.
#: A stream has no footer: a part that does not end with the end-of-stream marker reads as damaged
#: (`dse.runs.writer.read_part`). `finalize` turns the parts into results.parquet. Grid shards stay Parquet
#: (`finalize_grid` streams them with a lazy scan); `.arrow` (IPC file) parts of earlier versions still read.
#: The array NSGA-II's generations are `.dcol` files (dse.runs.colpart: the runner's arrays as they are, ~0.1-0.2 ms
#: per 100-trial generation against ~2-3 ms for a polars frame and its Arrow stream); a generation with a column
#: that format cannot hold is written as an Arrow stream.
#: Since 2026-12-03 they are records of one append-only file (PART_LOG, dse.runs.partlog): a file per generation
#: cost an open, a rename and two fsyncs (file and folder, ~5 + 1.4 ms here), a record one write and one fdatasync
#: (~2 ms); `.dcol` files of earlier runs still read.
PART_FORMATS = {"arrows": ".arrows", "arrow": ".arrow", "parquet": ".parquet", "dcol": ".dcol"}
PART_LOG = "generations.dlog"
RESULTS = "results.parquet"
PARETO = "pareto.parquet"
PARETO_NOMINAL = "pareto_nominal.parquet"
RUN_JSON = "run.json"
SUMMARY_JSON = "summary.json"
STUDY_YAML = "study.yaml"
TECHNOLOGY_YAML = "technology.yaml"
JOURNAL = "journal.log"
LOCK = ".lock"
#: held (flock) by whoever writes the run's Optuna mirror: the runner, or its mirror process
MIRROR_LOCK = ".mirror.lock"
#: a part's constraint vector per trial (Optuna's `constraints:<key>` system attributes, in the order of the
#: study attribute `dse:constraints`), stored in place of its journal record (`_optuna`) by a run whose journal
#: records are built in bulk from the parts' columns (dse.study.runner.JOURNAL_EVERY_S)
CONSTRAINTS_COLUMN = "_constraints"
#: parts-only bookkeeping columns (Optuna replay data), dropped from results.parquet
INTERNAL_COLUMNS = ("_optuna", "_study_attrs", CONSTRAINTS_COLUMN)
#: Parquet file-level metadata key holding {column: unit} (DuckDB: `parquet_kv_metadata`)
UNITS_KEY = "dse:units"
#: knob column prefixes (`chip.sram_mb`, `system.num_chips`)
KNOB_PREFIXES = ("chip.", "system.")


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Objective(BaseModel):
    """One objective: a metric column, or an expression over metrics and knobs (same grammar as constraints,
    e.g. `mix.throughput / system_cost_usd`), and whether bigger is better."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(min_length=1, description="metric name (e.g. mix.throughput) or an expression over metrics")
    direction: Literal["minimize", "maximize"]

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def is_expression(self) -> bool:
        """True when `metric` is not a plain (dotted) column name."""
        return not _NAME_RE.fullmatch(self.metric)

    def names(self) -> list[str]:
        """Columns the objective reads."""
        return [self.metric] if not self.is_expression else list(parse(self.metric).names)

    @field_validator("metric")
    @classmethod
    def _parses(cls, v: str) -> str:
        if not _NAME_RE.fullmatch(v):
            try:
                parse(v)
            except ExprError as exc:
                raise ValueError(f"objective expression {v!r}: {exc}") from None
        return v


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


#: robust columns of a study with `uncertainty:` (dse.uncertainty.robust computes them): `p<NN>.<metric>`
#: is the NN-th percentile of a metric over the Monte-Carlo samples, `prob.<name>` the share of samples
#: meeting the study's chance condition `uncertainty.chance.<name>`
ROBUST_RE = re.compile(r"^(?:p(?P<pct>[1-9][0-9]?)\.(?P<metric>[A-Za-z_].*)|prob\.(?P<chance>[A-Za-z_][A-Za-z0-9_]*))$")


def robust_column(name: str) -> tuple[str, float | None, str] | None:
    """("quantile", q, metric) for `p90.metric`, ("chance", None, name) for `prob.name`, else None."""
    m = ROBUST_RE.match(name)
    if m is None:
        return None
    if m["chance"]:
        return "chance", None, m["chance"]
    return "quantile", int(m["pct"]) / 100.0, m["metric"]


def nominal_objectives(objectives: list["Objective"]) -> list["Objective"] | None:
    """The objectives with each robust quantile column replaced by its nominal metric (`p90.cost` → `cost`)
    and chance columns dropped; None when no objective reads a robust column (or an expression does)."""
    out, robust = [], False
    for o in objectives:
        r = robust_column(o.metric) if not o.is_expression else None
        if o.is_expression and any(robust_column(n) for n in o.names()):
            return None
        if r is None:
            out.append(o)
        elif r[0] == "quantile":
            robust = True
            out.append(Objective(metric=r[2], direction=o.direction))
        else:
            robust = True
    metrics = [o.metric for o in out]
    return out if robust and out and len(set(metrics)) == len(metrics) else None


class TechnologyRef(_Model):
    """The technology a run was evaluated with: the override file as given and its copy in the run folder."""

    source: str | None = Field(None, description="override path as resolved when the run started")
    file: str | None = Field(TECHNOLOGY_YAML, description="copy of the override inside the run folder")


class RunMeta(_Model):
    """`run.json`: what defines the run's trials (written at start, before any trial)."""

    name: str
    fingerprint: str | None = None
    objectives: list[Objective] = Field(default_factory=list)
    constraints: list[str] = Field(default_factory=list)
    knobs: list[str] = Field(default_factory=list)
    varying: list[str] = Field(default_factory=list)
    step_decimals: dict[str, int] = Field(default_factory=dict, description="decimals of each stepped float "
                                          "knob's grid low + k·step (exports round to them)")
    sampler: Any = None
    seed: int | None = None
    mix: Any = None
    mix_resolved: dict[str, Any] | None = Field(
        None, description="the mix as evaluated (Mix.model_dump): readers need neither the study's folder nor its "
                          "model files")
    budget: Any = None
    batch_size: int | None = None
    reference_point: dict[str, float] | None = Field(
        None, description="hypervolume reference per objective; given in the study or derived from the first "
                          "feasible batch, then stored here and used by every reader")
    reference_point_rule: str | None = None
    storage: str | None = None
    space: str | None = None
    model_hash: str | None = None
    technology: TechnologyRef | None = None
    software: str | None = Field(None, description="software stack (calibration class) the trials ran under; "
                                 "null = the calibration file's default")
    sweep: list[str] | None = None
    grid: dict[str, Any] | None = None
    definition: dict[str, Any] | None = Field(
        None, description="everything that defines the trials, as fingerprinted (dse.study.spec.Study.definition); "
                          "a resume of another definition is refused naming the fields that differ")


class Summary(_Model):
    """`summary.json`: derived from the parts by `finalize` (can always be rebuilt)."""

    study: str
    trials: int = 0
    trials_complete: int = 0
    trials_failed: int = 0
    feasible: int = 0
    feasible_share: float = 0.0
    front_size: int = 0
    hypervolume: float = 0.0
    reference_point: dict[str, float] | None = None
    reference_point_rule: str | None = None
    objectives: list[Objective] = Field(default_factory=list)
    best: dict[str, Any] = Field(default_factory=dict)


def read_json(path: Path) -> dict:
    """A JSON object from `path`, {} when missing or unreadable (a killed run may lack summary.json)."""
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (ValueError, OSError):  # malformed JSON or not UTF-8 (both ValueErrors), unreadable
        data = {}
    return data if isinstance(data, dict) else {}
