"""What the optimising runner and the grid runner share: the run folder of a study (its run.json, the
study file and technology copies), the progress record and the result record.

Kept apart from `runner` so that `grid` does not import it (no import cycle)."""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import dse
from dse.errors import DseUserError
from dse.runs.front import STUDY_RULE
from dse.runs.layout import JOURNAL, RUN_JSON, STUDY_YAML, RunMeta, read_json
from dse.runs.writer import PartStore, store_technology, write_meta
from dse.study.evaluator import ModelEvaluator
from dse.study.space import decimals_of
from dse.study.spec import Study


@dataclass
class Progress:
    """What the live display shows: after a batch, at most every `runner.PROGRESS_EVERY_S`, and after the last."""

    study: str
    done: int
    budget: int | None
    elapsed_s: float
    new_trials: int
    feasible: int
    front_size: int
    hypervolume: float
    batch: int

    @property
    def rate(self) -> float:
        return self.new_trials / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    resumed_from: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


_MODEL_HASH: dict[tuple, str] = {}  # the files' (path, mtime, size) -> model_hash (one entry)


def model_hash() -> str:
    """Hash of the model and workload sources/data: a resumed run warns when they changed. The sources are
    listed without entering `__pycache__` (numba's cache files) and read again only when one of them changed
    (size or modification time) since the last call in this process."""
    root = Path(dse.__file__).parent
    files = []
    for sub in ("model", "workloads"):
        for folder, dirs, names in os.walk(root / sub):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            files += [Path(folder) / n for n in names if n.endswith((".py", ".yaml"))]
    files = [f for f in sorted(files) if f.is_file()]
    stamp = tuple((str(f), st.st_mtime_ns, st.st_size) for f in files for st in [f.stat()])
    if stamp not in _MODEL_HASH:
        h = hashlib.sha256()
        for f in files:
            h.update(f.relative_to(root).as_posix().encode())
            h.update(f.read_bytes())
        _MODEL_HASH.clear()
        _MODEL_HASH[stamp] = h.hexdigest()[:16]
    return _MODEL_HASH[stamp]


def build_meta(study: Study, run_dir: Path, budget: int | None, storage_loc: str) -> RunMeta:
    """run.json of a study run. A reference point derived by an earlier start of the same run is kept."""
    s = study.spec
    old = read_json(Path(run_dir) / RUN_JSON)
    ref, rule = (dict(s.reference_point), STUDY_RULE) if s.reference_point else (None, None)
    if ref is None and old.get("reference_point") and old.get("fingerprint") == study.fingerprint():
        ref, rule = old["reference_point"], old.get("reference_point_rule")
    return RunMeta(
        name=s.name, fingerprint=study.fingerprint(), objectives=list(s.objectives),
        constraints=list(s.constraints) + list(study.space.spec.constraints), knobs=study.space.names,
        varying=list(study.space.knobs),
        step_decimals={n: decimals_of(k.spec.low, k.spec.step) for n, k in study.space.knobs.items()
                       if k.kind == "float" and k.spec.step},
        sampler=s.sampler.model_dump(mode="json"), seed=s.seed, mix=s.mix,
        mix_resolved=resolved_mix(study),
        budget={"trials": budget, "timeout_s": s.budget.timeout_s}, batch_size=s.effective_batch,
        reference_point=ref, reference_point_rule=rule, storage=storage_loc, space=study.space.name,
        model_hash=model_hash(), technology=store_technology(run_dir, study.technology_path()), software=s.software,
        definition=study.definition())


def resolved_mix(study: Study) -> dict[str, Any] | None:
    """The study's mix as evaluated, for run.json (None if it cannot be resolved here)."""

    base = study.path.parent if study.path else None
    try:
        return ModelEvaluator(study.spec.mix, base_dir=base).mix().model_dump(mode="json")
    except (DseUserError, ValueError, ImportError):
        return None


def start_meta(study: Study, run_dir: Path, budget: int | None, storage_loc: str) -> tuple[RunMeta, bool]:
    """Write run.json for this start; returns it and whether the model changed since the stored trials."""
    meta = build_meta(study, run_dir, budget, storage_loc)
    old_hash = read_json(Path(run_dir) / RUN_JSON).get("model_hash")
    write_meta(run_dir, meta)
    return meta, old_hash is not None and old_hash != meta.model_hash


def prepare_run_dir(study: Study, run_dir: Path) -> None:
    """Create the folder, refuse one that holds a different study, copy the config beside the results."""
    run_dir.mkdir(parents=True, exist_ok=True)
    meta_path = run_dir / RUN_JSON
    if meta_path.exists():
        old = read_json(meta_path)
        if not old and PartStore(run_dir, create=False).indices():
            raise DseUserError(
                f"{meta_path}: damaged (not a JSON object), so this folder's study cannot be checked; if it holds "
                f"a run of this same study delete {meta_path.name} and rerun (it is rewritten and the stored "
                "trials are kept), else use another --out folder")
        if old.get("fingerprint") != study.fingerprint() and PartStore(run_dir, create=False).indices():
            changes = definition_changes(old, study)
            said = f": {'; '.join(changes)}" if changes else " (space, mix, objectives, sampler or seed changed)"
            back = ("; to continue the stored run, set these back in the study file" if changes else "")
            raise DseUserError(
                f"{run_dir} holds a run of a different study definition{said}{back}; or use another --out folder, "
                "or delete it to start over")
        if old.get("fingerprint") != study.fingerprint():  # an earlier start that stored no trial: taken over
            _forget_start(run_dir)
    cfg = run_dir / STUDY_YAML
    if study.path is not None and study.path.exists() and study.spec.sweep is None and "sweep_entry" not in study.raw:
        shutil.copyfile(study.path, cfg)
    else:
        cfg.write_text(yaml.safe_dump({**study.spec.model_dump(mode="json", exclude_none=True),
                                       "space": study.space.spec.model_dump(mode="json")}, sort_keys=False))


def definition_changes(old: dict[str, Any], study: Study) -> list[str]:
    """What differs between a stored run.json and `study`, leaf by leaf of the study's definition (e.g. nsga2's
    default crossover became sbx on 2026-12-02: "sampler.crossover: stored 'uniform', now 'sbx'"). A run.json
    written before it stored the definition is compared on the fields it recorded under the same names."""
    now = study.definition()
    was = old.get("definition")
    if not isinstance(was, dict):
        was = {k: old[k] for k in now if k in old and type(old[k]) is type(now[k])}
        now = {k: now[k] for k in was}
    return [f"{k}: stored {a!r}, now {b!r}" for k, a, b in _leaf_diff(was, now)]


def _leaf_diff(was: Any, now: Any, path: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted path, stored, now) of every leaf that differs. A top-level key on one side only is a change (an
    optional part such as `uncertainty` set or removed); below it only shared keys are compared (a sampler's
    settings stored before a newer setting existed)."""
    if isinstance(was, dict) and isinstance(now, dict):
        keys = [*now, *(k for k in was if k not in now)] if not path else [k for k in now if k in was]
        return [d for k in keys for d in _leaf_diff(was.get(k), now.get(k), f"{path}{k}.")]
    return [] if was == now else [(path.rstrip("."), was, now)]


def _forget_start(run_dir: Path) -> None:
    """Remove what a failed start of another definition left (no trials): its run.json and Optuna journal."""
    for name in (RUN_JSON, JOURNAL):
        (run_dir / name).unlink(missing_ok=True)
