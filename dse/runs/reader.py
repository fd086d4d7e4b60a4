"""Reading a run folder: the one reader used by `dse pareto`, `dse export`, the dashboard and the Python API.

Accepts folders written by earlier versions (objectives only in study.yaml, no stored reference point, a
bare `sram_mb` beside `chip.sram_mb`, no technology copy) and a run still in progress or killed (trials
from the parts when results.parquet is missing or behind).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml
from pydantic import ValidationError

from dse.errors import DseUserError
from dse.model.technology import default_technology, load_technology
from dse.runs import columns
from dse.runs.front import (
    column_name,
    first_batch_reference,
    front_hypervolume,
    front_mask,
    maximize_of,
    objective_matrix,
    reference_array,
)
from dse.runs.layout import (
    KNOB_PREFIXES,
    PARTS_DIR,
    RESULTS,
    RUN_JSON,
    STUDY_YAML,
    SUMMARY_JSON,
    TECHNOLOGY_YAML,
    Objective,
    RunMeta,
    read_json,
)
from dse.runs.writer import PartStore
from dse.workloads.scenarios import load_mix


def read_study_yaml(path: Path) -> dict:
    for fname in (STUDY_YAML, "config.yaml"):
        if (path / fname).is_file():
            try:
                data = yaml.safe_load((path / fname).read_text()) or {}
            except yaml.YAMLError:
                data = {}
            return data if isinstance(data, dict) else {}
    return {}


def load_trials(run_dir: Path | str) -> pl.DataFrame:
    """All trials of a run: `results.parquet` when it is current, else rebuilt from the parts."""
    run_dir = Path(run_dir)
    res = run_dir / RESULTS
    parts = PartStore(run_dir, create=False) if (run_dir / PARTS_DIR).is_dir() else None
    if res.is_file():
        try:
            df = pl.read_parquet(res)
        except Exception as exc:  # polars raises several types for corrupt files
            if parts is None or not parts.indices():
                raise DseUserError(f"{res}: cannot read: {str(exc).splitlines()[0]}") from None
            df = None  # damaged (e.g. truncated) but derived: rebuilt from the parts below
        if df is not None and (parts is None or df.height >= _rows_or_zero(parts)):
            return df
    if parts is None:
        raise DseUserError(f"{run_dir}: no {RESULTS} here and no {PARTS_DIR}/ (expected a run folder written by "
                           "`dse run`)")
    df = parts.read_all()
    if df is None:
        raise DseUserError(f"{run_dir}: the run has no trials yet")
    return columns.tidy(columns.without_internal(df))


def no_front_message(run_dir: Path | str, where: str, top: int = 3) -> str | None:
    """None when the run has a feasible trial; else why none is (the commonest `reason`s with their counts)
    and what to change: a finished run with nothing feasible is useless, so `dse run` exits 2 with this."""
    try:
        df = load_trials(run_dir)
    except DseUserError:
        return None
    if df.height == 0 or ("feasible" in df.columns and bool(df["feasible"].fill_null(False).any())):
        return None
    reasons = (df.filter(~pl.col("feasible").fill_null(False))["reason"].fill_null("").to_list()
               if "reason" in df.columns else [])
    counts = Counter(r or "failed (no result)" for r in reasons).most_common(top)
    why = "; ".join(f"{n}× {r}" for r, n in counts)
    return (f"{where}: no feasible design in {df.height} trials, so there is no Pareto front ({why}); loosen "
            f"those constraints or SLOs, or widen the search space, and run into a new --out folder (the "
            f"trials are kept in {run_dir}/)")


def _rows_or_zero(parts: PartStore) -> int:
    """Rows in the parts; 0 when one is damaged (then a readable results.parquet is all there is)."""
    try:
        return parts.rows()
    except DseUserError:
        return 0


def run_meta(run_dir: Path | str) -> RunMeta:
    """run.json as a `RunMeta` (objectives filled from study.yaml / summary.json for older folders)."""
    run_dir = Path(run_dir)
    p = run_dir / RUN_JSON
    if not p.exists():
        raise DseUserError(f"{run_dir}: not a study run folder (no {RUN_JSON})")
    raw = read_json(p)
    return _meta_from(raw, read_study_yaml(run_dir), read_json(run_dir / SUMMARY_JSON), run_dir)


def _meta_from(raw: dict, study: dict, summary: dict, run_dir: Path) -> RunMeta:
    data = dict(raw)
    if not data.get("objectives"):
        data["objectives"] = study.get("objectives") or summary.get("objectives") or []
    data["objectives"] = [o for o in data["objectives"] if isinstance(o, dict) and "metric" in o]
    data.setdefault("name", study.get("name") or summary.get("study") or summary.get("sweep") or run_dir.name)
    if data.get("technology") is None and (run_dir / TECHNOLOGY_YAML).is_file():
        data["technology"] = {"file": TECHNOLOGY_YAML}
    try:
        return RunMeta.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise DseUserError(f"{run_dir / RUN_JSON}: {where}: {first['msg']}") from None


@dataclass
class Run:
    """One run folder: all trials, its metadata, summary and study config."""

    name: str
    path: Path
    results: pl.DataFrame
    meta: RunMeta
    study: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)

    @property
    def sampler(self) -> str:
        s = self.study.get("sampler") or self.meta.sampler or self.summary.get("sampler") or {}
        return str(s.get("kind", "nsga2")) if isinstance(s, dict) else str(s)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.sampler})"

    def objectives(self) -> list[Objective]:
        return list(self.meta.objectives)

    def column(self, name: str) -> pl.Series:
        """A column by name, accepting an older run's alias (`sram_mb` for `chip.sram_mb`)."""
        c = column_name(self.results.columns, name)
        if c is None:
            raise DseUserError(f"{self.path}: {RESULTS} has no column {name}")
        return self.results[c]

    def technology_file(self) -> Path | None:
        """The technology override the run was evaluated with (its copy in the run folder), or None."""
        t = self.meta.technology
        if t is not None and t.file and (self.path / t.file).is_file():
            return self.path / t.file
        if t is not None and t.source and Path(t.source).is_file():
            return Path(t.source)
        return None

    def technology(self) -> Any:
        """The run's technology: the default one with the run's override merged over it."""

        f = self.technology_file()
        return load_technology(f) if f is not None else default_technology()

    def mix(self) -> Any:
        """The run's workload mix (built-in name or inline mapping), or None when the run names none."""

        if self.meta.mix_resolved:  # self-contained: inline models named by a path relative to the study
            return load_mix(self.meta.mix_resolved)
        spec = self.study.get("mix", self.meta.mix)
        return None if spec is None else load_mix(spec)

    def front(self, objs: list[Objective] | None = None) -> np.ndarray:
        return front_mask(self.results, objs or self.objectives())

    def reference_point(self) -> np.ndarray | None:
        """The run's hypervolume reference point (stored; derived by the same rule for older runs)."""
        objs = self.objectives()
        ref = reference_array(objs, self.meta.reference_point)
        return ref if ref is not None else first_batch_reference(self.results, objs)

    def hypervolume(self, upto: int | None = None) -> float:
        """Hypervolume of the feasible front (of the first `upto` trials) w.r.t. the run's reference point."""
        objs = self.objectives()
        df = self.results if upto is None else self.results.sort("trial").head(upto)
        mask = front_mask(df, objs, use_stored=upto is None)
        return front_hypervolume(objective_matrix(df.filter(pl.Series(mask)), objs), self.reference_point(),
                                 maximize_of(objs))


def load_run(path: Path | str) -> Run:
    """Read one run folder; a missing or unreadable table is a user error naming the folder."""
    path = Path(path)
    if not path.is_dir():
        raise DseUserError(f"{path}: no {RESULTS} here: no such folder (expected a run folder written by `dse run`)")
    df = load_trials(path)
    study = read_study_yaml(path)
    summary = read_json(path / SUMMARY_JSON)
    meta = _meta_from(read_json(path / RUN_JSON), study, summary, path)
    name = str(study.get("name") or meta.name or path.name)
    if "trial" not in df.columns:
        df = df.with_row_index("trial")
    if "feasible" not in df.columns:
        df = df.with_columns(pl.lit(True).alias("feasible"))
    return Run(name=name, path=path, results=df, meta=meta, study=study, summary=summary)


def knob_columns(df: pl.DataFrame) -> list[str]:
    """Design knob columns (dotted `chip.*` / `system.*` names) in table order."""
    return [c for c in df.columns if c.startswith(KNOB_PREFIXES)]


def expand_sweeps(paths: Any) -> list[Path]:
    """A sweep folder (run.json lists `sweep` sub-studies) stands for its sub-run folders, compared side by side."""
    out: list[Path] = []
    for p in map(Path, paths):
        meta = read_json(p / RUN_JSON)
        subs = sorted(d for d in p.iterdir() if d.is_dir() and (d / RESULTS).is_file()) if p.is_dir() else []
        out.extend(subs if meta.get("sweep") and subs else [p])
    return out


def load_runs(paths: Any) -> list[Run]:
    """Read several run folders, making run names unique (`name`, `name-2`, ...)."""
    runs = [load_run(p) for p in expand_sweeps(paths)]
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.name] = seen.get(r.name, 0) + 1
        if seen[r.name] > 1:
            r.name = f"{r.name}-{seen[r.name]}"
    return runs
