"""One driver per study: ask a batch (= one GA generation), evaluate it vectorized, persist, record.

Two ways to ask. The array NSGA-II (`dse.study.samplers.ArrayNSGAII`, kind nsga2 by default) breeds the
whole generation as a knob matrix, and each trial is stored as the journal record Optuna's `Study.add_trial`
would write (`dse.study.storage.TrialRecords`): no per-trial ask/suggest/tell. Every other sampler runs
Optuna's ask/tell on an in-memory study (one `ask` and `suggest_*` per trial).

Order per batch: ask B designs → knob columns → reuse the stored result of designs asked before (the
`repeat` column marks those trials; they are recorded like any other) and evaluate the rest (in-process or
Ray chunks) → objectives and constraint vector per trial → write the batch as one part (an Arrow IPC stream,
atomic, in place at once and flushed to disk by a thread while the next batch runs; the system of record) → record the trials in the Optuna mirror (the run's journal file: the
array sampler's trials as journal lines built in bulk from the stored arrays and appended by a writer thread at most
every JOURNAL_EVERY_S and at the end, each append flushed to disk by that thread; other samplers' one append per batch; an external
`storage:` gets them through `Study.add_trials`, from a child process that mirrors each part as it is written
when the run records at least MIRROR_PROCESS_MIN_TRIALS new trials on a machine with an idle CPU; the run
ends when the mirror is complete). A killed run therefore loses at most the batch in flight; a rerun rebuilds the
sampler's state from the parts (the array NSGA-II replays the stored generations; the Optuna samplers get
the trials and their study attributes back) and continues to the budget. Each batch's sampler is seeded
from (seed, batch), so a resumed run asks exactly what an uninterrupted run would have asked.

Infeasible designs (the model says so, or a constraint is violated) are told as COMPLETE with their
finite objective values and a positive constraint value, so constrained samplers (NSGA-II/III, TPE)
rank them behind every feasible design while still learning from them; their reason is stored. A
batch chunk whose evaluation raises is told as FAIL and stored with the error.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import logging
import math
import os
import sys
import warnings
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

import numpy as np
import optuna
import polars as pl

from dse.errors import DseUserError
from dse.runs.front import FrontTracker, first_batch_reference, objective_matrix, objective_values, reference_array
from dse.runs.columns import without_internal
from dse.runs.colpart import Coded, ColumnsError, dictionary, frame_of
from dse.runs.layout import CONSTRAINTS_COLUMN, INTERNAL_COLUMNS, JOURNAL
from dse.runs.inflight import thread_pool
from dse.runs.writer import PartStore, RunLock, finalize, set_reference
from dse.study.evaluator import ModelEvaluator, normalize
from dse.study.execution import (MODEL_PROCESS_DEFAULT, MODEL_PROCESS_ENV, EvalError, ModelProcess, concat,
                                 evaluate_jointly, is_pure, make_executor,
                                 model_process_wanted, pack_columns, take, unpack_columns)
from dse.expr import parse
from dse.study.grid import run_grid
from dse.study.probe import check_study
from dse.study.rundir import Progress, RunResult, prepare_run_dir, start_meta
from dse.pareto import to_minimization
from dse.study.cache import Normalized, ResultCache
from dse.study.samplers import KnobCodec, batch_seed, design_keys, make_generation_sampler, make_sampler
from dse.study.spec import Study
from dse.study.storage import (MirrorProcess, OptunaMirror, frozen_trials, iso_utc, mirror_writer_lock, set_outcome,
                               TrialRecords)

log = logging.getLogger(__name__)

MODEL_CONSTRAINT = "model: feasible"
# a run that will record at least this many new trials in an external Optuna storage (`storage:`, e.g. an RDB),
# on a machine with an idle CPU, writes that mirror from a child process: its ~1 ms of Optuna bookkeeping per
# trial (`Study.add_trials`) then overlaps the next generations. Measured (CPU of runner / child, 2 cores):
# 10k trials 5.5 s in one process -> 2.8 s + 3.5 s; 3k trials 1.65 s -> 0.86 s + 1.47 s, where the child's start
# (~0.9 s: a fresh interpreter importing Optuna and Polars) eats the gain; with no idle CPU the child only
# competes with the runner. The run's own journal file is always written in-process: its lines are the parts'
# stored records with a header (~10 us per trial, appended by a thread). DSE_MIRROR_PROCESS=always|never
# overrides.
MIRROR_PROCESS_MIN_TRIALS = 5000
# the interpreter's thread switch interval during a run (Python's default 5 ms is restored after it): the run's
# writer threads (a part's fsync, a journal append) each need the interpreter lock for a moment between their
# system calls, and with the main thread busy breeding and storing the next generation each such moment waited
# up to the whole interval, so that a part's fsync overlapped little of the next generation and the next part
# waited for it. Measured (a micro benchmark: 6 ms of Python work per 60 KB part, each part
# written and fsynced behind, 2 loaded cores): the main thread waited 4.3-5.0 ms per part at 5 ms, 0.0-3.6 ms at
# 0.5 ms. The main thread gives up the lock only when another thread asks for it, so the shorter interval costs
# it nothing otherwise
RUN_SWITCH_INTERVAL_S = 0.0005

# a serial run of the array NSGA-II with a model process (`dse.study.execution.model_process_wanted`) sends the
# generations in flight to it together, as one model call (`StudyRunner._dispatch`), and stores the generations
# before them while it evaluates; else (False) the model process evaluates, reuses and scores each generation
# (`StudyRunner._child_work`)
MODEL_PROCESS_PAIRS = True


def mirror_in_background(new_trials: int | None, *, external: bool = True) -> bool:
    """Whether the Optuna mirror is written by a child process (see MIRROR_PROCESS_MIN_TRIALS); `external`:
    the mirror is a `storage:` URL rather than the run's journal file."""
    how = os.environ.get("DSE_MIRROR_PROCESS", "auto")
    if how in ("always", "never"):
        return how == "always"
    if not external:
        return False
    if new_trials is not None and new_trials < MIRROR_PROCESS_MIN_TRIALS:
        return False
    return (os.cpu_count() or 1) - os.getloadavg()[0] >= 1.0  # an idle CPU, on average over the last minute


# the run's own journal gets the lines of the generations stored since its last append at most this often (and
# at the end): built in bulk (~0.2-1 us per trial at 1,000s of trials against ~20 us one generation at a time,
# `TrialRecords.batch`), so optuna-dashboard sees a running study about a second behind its parts (the system of
# record; a killed run's rerun brings the journal up to date from them)
JOURNAL_EVERY_S = 1.0
# ... or once this many trials wait; and once more when the trials still to come (a budget of trials) fit in
# JOURNAL_LAST_TRIALS, so that the run's end, which waits for the last append while it finalizes (CPU-bound on 2
# cores: results.parquet encoded, the front and the summary), builds few lines. Each append costs ~1.5 ms of CPU
# besides its lines (polars' query and its Series, most of it holding the interpreter lock, and an fdatasync):
# measured (a 10k-trial run's flushes replayed, CPU of the writer thread / the process per run): every 1,000 trials
# 33 / 52 ms, every 2,500 25 / 41 ms
JOURNAL_EVERY_TRIALS = 2500
JOURNAL_LAST_TRIALS = 1000

# the stored generations' columns are turned into one frame every this many generations, by a thread while the run
# goes on (most of it is polars' work, without the interpreter lock), rather than all at the end, where the run waits
# for it (finalize's input). Measured on the main thread, 10,000 trials (100 generations of 100), CPU ms in total / at
# the end: all at the end 34-42 / 34-42; every 10: 65-76 / 1.8; every 25: 45-46 / 0.7 (~11 ms each); every 50: 32-36 /
# 0.6
FRAME_EVERY = 25
# ... and, in a run with a budget of trials, once this many generations are still to come, so that the thread's last
# frame is made while they run: the run's end frames those itself. Made before the last generation only (as a run
# without a budget does), the thread's last frame (~24 generations, ~3.5 ms of Python) was still being made when the
# run ended, which waited for it: 10.1 ms at the end (2.0 CPU ms), median of 8 10k-trial runs
FRAME_LAST = 3

# the progress callback (front size, hypervolume: a front merge per call) runs at most this often, and after the
# last batch; a display refreshes at ~4 Hz, and a 2,000-trial run has 16 batches in about a second
PROGRESS_EVERY_S = 0.25

# rounds of re-submitting chunks whose infrastructure failed (beyond Ray's own task retries); the rest is
# stored as a FAIL whose reason starts with TRANSIENT_MARK and is re-run when the study resumes
RETRIES = 3
TRANSIENT_MARK = "transient: "


def _object_series(name: str, v: np.ndarray) -> pl.Series:
    """A column of Python values (e.g. a list-valued knob) as Polars infers it from the values, built from its
    distinct values (a batch repeats a few choices: per-element inference of nested lists is slow). A value
    is looked up by identity first (a sampler's column repeats the same choice objects), then by its repr."""
    by_id: dict[int, int] = {}
    index: dict[Any, int] = {}
    distinct: list[Any] = []
    rows = np.empty(len(v), dtype=np.int64)
    values = v.tolist()  # held until the end: no id is reused while the loop runs
    for i, x in enumerate(values):
        j = by_id.get(id(x))
        if j is None:
            key = (type(x), repr(x))
            j = index.get(key)
            if j is None:
                j = index[key] = len(distinct)
                distinct.append(x)
            by_id[id(x)] = j
        rows[i] = j
    key = (name, tuple(index))
    values = _DISTINCT.get(key)
    if values is None:  # a column's few distinct values: built once per run (a Series of lists costs ~70 us)
        if len(_DISTINCT) >= 256:
            _DISTINCT.clear()
        values = _DISTINCT[key] = pl.Series(name, distinct, strict=False)
    return values[rows]


# `_object_series`'s Series of a column's distinct values, by (column, the values' keys in order)
_DISTINCT: dict[tuple, pl.Series] = {}


def _column_type(dtype: np.dtype) -> Any:
    """The type of a metric's column in `StudyRunner.score` for a chunk's result of `dtype`: strings (and other
    objects) as objects, booleans as bool, floats as float64, other numbers as they are."""
    if dtype.kind in "OUS":
        return object
    if dtype.kind == "b":
        return bool
    return float if dtype.kind == "f" else dtype


def columns_frame(data: dict[str, Any]) -> pl.DataFrame:
    """A DataFrame of named columns (numpy arrays, Series or lists), as `pl.DataFrame(data)` gives it. The numpy
    columns of one dtype become one Series sliced per column (zero-copy): a Series per array costs polars
    ~12 us each, most of a 100-row part's construction."""
    n = len(next(iter(data.values()))) if data else 0
    groups: dict[str, list[str]] = {}
    for k, v in data.items():
        if isinstance(v, np.ndarray) and v.ndim == 1 and len(v) == n and v.dtype.kind in "biufM":
            groups.setdefault(v.dtype.str, []).append(k)
    series: dict[str, pl.Series] = {}
    for names in groups.values():
        flat = pl.Series(np.concatenate([data[k] for k in names]))
        series.update({k: flat.slice(i * n, n).alias(k) for i, k in enumerate(names)})
    return pl.DataFrame([series[k] if k in series else v.alias(k) if isinstance(v, pl.Series)
                         else pl.Series(k, v.tolist(), dtype=pl.String)  # ~2x faster than from numpy's UCS-4
                         if isinstance(v, np.ndarray) and v.dtype.kind == "U"
                         else pl.Series(k, v, strict=False) for k, v in data.items()])


def _listed(data: dict[str, Any]) -> dict[str, Any]:
    """`data` with its `Coded` columns as lists of values (for `columns_frame`)."""
    return {k: [v.values[c] for c in v.codes.tolist()] if isinstance(v, Coded) else v for k, v in data.items()}


def _stored_frame(frames: list[Any]) -> pl.DataFrame | None:
    """The run's stored trials as one frame, from frames (or futures of frames) and runs of generations' columns
    (`frame_of`)."""
    out: list[pl.DataFrame] = []
    run: list[dict[str, Any]] = []
    for f in [*frames, None]:
        if isinstance(f, Future):
            f = f.result()
        if isinstance(f, dict) and (not run or list(f) == list(run[0])):
            run.append(f)
            continue
        if run:
            out.append(frame_of(run))
            run = []
        if isinstance(f, dict):
            run.append(f)
        elif f is not None:
            out.append(f)
    return pl.concat(out, how="diagonal_relaxed") if out else None


def check_folder(run_dir: Path) -> None:
    """The run folder and every existing parent of it are folders (`--out` given as a file is an error)."""
    for p in [Path(run_dir), *Path(run_dir).parents]:
        if p.exists():
            if not p.is_dir():
                raise DseUserError(f"--out: {p} is a file, not a folder; give a folder for run folders")
            return


def run_dir_for(study: Study, out: Path | str) -> Path:
    return Path(out) / study.name


def default_evaluator(study: Study) -> ModelEvaluator:
    return ModelEvaluator.for_study(study)


class _GenerationRecords:
    """A stored generation's journal records as arrays (the arguments of `TrialRecords.batch`), turned into text
    later, with other generations' (`StudyRunner._record_texts`)."""

    __slots__ = ("X", "failed", "Y", "cmat", "feasible", "reason", "key_cols", "b", "start", "complete")

    def __init__(self, X: np.ndarray, failed: np.ndarray, Y: np.ndarray, cmat: np.ndarray, feasible: np.ndarray,
                 reason: np.ndarray, key_cols: dict[str, np.ndarray], b: int, start: str, complete: str):
        self.X, self.failed, self.Y, self.cmat, self.feasible = X, failed, Y, cmat, feasible
        self.reason, self.key_cols, self.b, self.start, self.complete = reason, key_cols, b, start, complete


class StudyRunner:
    """Runs one study to its budget in `run_dir` (resuming whatever is already there)."""

    def __init__(self, study: Study, run_dir: Path, *, trials: int | None = None,
                 evaluator: Callable | None = None, serial: bool = False, address: str | None = None,
                 executor: Any = None, on_progress: Callable[[Progress], None] | None = None):
        self.study = study
        self.spec = study.spec
        self.space = study.space
        self.run_dir = Path(run_dir)
        self.budget = trials if trials is not None else self.spec.budget.trials
        self.timeout = self.spec.budget.timeout_s
        self.evaluator = evaluator or default_evaluator(study)
        self.executor = executor or make_executor(self.spec.execution, self.evaluator, serial=serial, address=address,
                                                  designs=self.budget)
        self.on_progress = on_progress
        self.objectives = list(self.spec.objectives)
        self.metrics = [o.metric for o in self.objectives]
        self.maximize = self.spec.maximize
        self.constraints = [*(parse(c) for c in self.spec.constraints), *self.space.constraints]
        self.constraint_names = [MODEL_CONSTRAINT] + [c.text for c in self.constraints]
        # Optuna constraint keys: the constraint texts, made unique
        self.constraint_keys = [n if n not in self.constraint_names[:j] else f"{n} #{j}"
                                for j, n in enumerate(self.constraint_names)]
        self._key_names: list[str] | None = None  # see key_metric_names
        self._codes_of: tuple | None = None  # see _knob_codes
        self.model_process: ModelProcess | None = None  # see _start_model_process

    # -- public ----------------------------------------------------------------------------------

    def run(self) -> RunResult:
        check_study(self.study)  # every config problem before the first trial and before anything is written
        check_folder(self.run_dir)
        try:
            if self.spec.sampler.kind == "grid":
                return run_grid(self)
            self.preflight()
            self.run_dir.mkdir(parents=True, exist_ok=True)
            # forked before the folder's locks are taken, so that the model process holds none of them
            self.model_process = self._start_model_process()
            switch = sys.getswitchinterval()
            sys.setswitchinterval(min(switch, RUN_SWITCH_INTERVAL_S))
            try:
                with RunLock(self.run_dir):  # before touching the folder: a refused second run changes nothing
                    prepare_run_dir(self.study, self.run_dir)
                    try:
                        return self._run()
                    finally:
                        self.executor.close()
            finally:
                sys.setswitchinterval(switch)
                if self.model_process is not None:
                    self.model_process.close()
        except OSError as exc:  # disk full, read-only, quota: the stored batches stay; a rerun resumes
            if exc.errno is None:
                raise
            raise DseUserError(f"{exc.filename or self.run_dir}: cannot write the run folder: "
                               f"{exc.strerror or exc}; fix that and rerun (the run resumes from its stored "
                               "trials)") from None

    def _start_model_process(self) -> ModelProcess | None:
        """A forked model process (`ModelProcess`) for a serial run of the array NSGA-II (see `model_process_wanted`):
        it evaluates the generations in flight together while the run stores the ones before (`_dispatch`,
        MODEL_PROCESS_PAIRS), or evaluates and scores each generation (`_child_work`); else None. Under `auto`, not
        beside an Optuna mirror process (`mirror_in_background`: an external storage's ~1 ms of Optuna work per
        trial), which wants the idle CPU too."""
        if getattr(self.executor, "kind", "") != "serial" or make_generation_sampler(self.spec.sampler,
                                                                                     self.space) is None:
            return None
        batches = None if self.budget is None else math.ceil(self.budget / self.spec.effective_batch)
        if not model_process_wanted(self.evaluator, batches):
            return None
        if self.spec.storage is not None and os.environ.get(MODEL_PROCESS_ENV, MODEL_PROCESS_DEFAULT) == "auto" and \
                mirror_in_background(self.budget, external=True):
            return None
        if MODEL_PROCESS_PAIRS and is_pure(self.evaluator):
            return ModelProcess(self.evaluator)  # evaluates the generations in flight together (`_dispatch`)
        return ModelProcess(self.evaluator, work=self._child_work)

    def preflight(self) -> None:
        """Problems found only by connecting (storage URL, Ray address) are reported before anything is
        written to the run folder."""
        if self.spec.storage is not None and self.spec.sampler.kind != "grid":
            try:
                optuna.storages.get_storage(self.spec.storage)
            except Exception as exc:  # noqa: BLE001 - any driver/connection error is the user's to fix
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise DseUserError(f"{self.study.path or 'study'}: storage: '{self.spec.storage}': cannot open it: "
                                   f"{first} (a file storage's folder must exist)") from None
            self._check_storage_owner()
        if getattr(self.executor, "kind", "") == "ray" and (
                getattr(self.executor, "address", None) or os.environ.get("RAY_ADDRESS")):
            try:
                self.executor.start()
            except BaseException:
                self.executor.close()
                raise

    def _check_storage_owner(self) -> None:
        """One Optuna study per run folder: a shared storage whose study of this name belongs to another run
        folder would mix the two runs' trials."""
        try:
            other = optuna.load_study(study_name=self.spec.name, storage=self.spec.storage).user_attrs.get(
                "dse:run_dir")
        except KeyError:  # no study of this name yet
            return
        if other and other != str(self.run_dir.resolve()):
            raise DseUserError(f"storage '{self.spec.storage}' already holds study '{self.spec.name}' of the run "
                               f"folder {other}; give this study another name or another storage (one study "
                               "per run folder, so that their trials do not mix)")

    # -- internals -------------------------------------------------------------------------------

    def _run(self) -> RunResult:
        t0 = time.perf_counter()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        ga = make_generation_sampler(self.spec.sampler, self.space)
        # the array NSGA-II's generations as raw columns (dse.runs.colpart), other samplers' batches as Arrow
        parts = PartStore(self.run_dir, fmt="dcol" if ga is not None else "arrows", sync_behind=True)
        prior = parts.read_all()
        if prior is not None:
            prior, rerun = self._rerun_transient(prior, parts)
            own_journal = self.run_dir / JOURNAL
            if rerun and self.spec.storage is None and own_journal.exists():
                # the journal is a mirror of the parts: rebuilt, so optuna-dashboard shows the re-run
                # trials as they now are, not as the infrastructure failure they were (an external
                # storage cannot be rewritten: its study attribute `dse:rerun_trials` names them)
                own_journal.unlink()
        else:
            rerun = []
        writer_lock = contextlib.ExitStack()  # the right to write the Optuna mirror (see mirror_writer_lock)
        writer_lock.enter_context(mirror_writer_lock(self.run_dir))
        directions = [o.direction for o in self.spec.objectives]
        mirror = OptunaMirror(self.spec.storage, self.run_dir, self.spec.name, directions, self.metrics)
        meta, model_changed = start_meta(self.study, self.run_dir, self.budget, mirror.location)
        mirror.set_study_attrs({"dse:run_dir": str(self.run_dir.resolve()), "dse:constraints": self.constraint_keys})
        if rerun and self.spec.storage is not None:
            done_before = mirror.study.user_attrs.get("dse:rerun_trials", [])
            mirror.set_study_attrs({"dse:rerun_trials": sorted(set(done_before) | set(rerun))})
        self.codec = ga.codec if ga is not None else KnobCodec(self.space)
        self.records = TrialRecords(self.space.distributions())
        self.cache = ResultCache(rows=self.budget or 0)
        self._flying: set[bytes] = set()  # designs sent to the model in batches not collected yet
        # batches submitted in-process, not evaluated yet: evaluated together (see _evaluate_together), else None
        self._together: list | None = None
        self.evaluated = 0
        self.seen: set[bytes] = set()  # every design of the run so far (for the parts' `repeat` column)

        # the in-memory study is the Optuna sampler's working copy; we keep its storage to replay a stored run
        self.storage = optuna.storages.InMemoryStorage()
        study = optuna.create_study(storage=self.storage, directions=[o.direction for o in self.spec.objectives],
                                    study_name=self.spec.name)
        with warnings.catch_warnings():  # experimental in Optuna, stable enough for labels
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(self.metrics)
        self.study_id = self.storage.get_study_id_from_name(self.spec.name)
        if prior is not None and meta.reference_point is None:  # killed before the derived one was stored
            ref = first_batch_reference(prior, self.objectives)
            if ref is not None:
                set_reference(self.run_dir, meta, self.objectives, ref)
        tracker = FrontTracker(self.maximize, reference_array(self.objectives, meta.reference_point))
        n_batches = 0
        resumed_from = 0
        self._held: list[tuple] = []  # see _replay
        if prior is not None:
            if ga is None:
                n_batches = self._rebuild(study, prior, tracker)
                mirror.append(study.get_trials(deepcopy=False))
            else:
                n_batches, self._held = self._replay(ga, prior, tracker, mirror)
            resumed_from = prior.height
            self._repeats(design_keys(self.codec.encode(self._knob_columns(prior))))
        tracker.new_reference = False
        done = resumed_from
        dists = self.space.distributions()
        background: MirrorProcess | None = None
        if ga is not None and mirror_in_background(None if self.budget is None else self.budget - done,
                                                   external=self.spec.storage is not None):
            writer_lock.close()  # handed to the mirror process
            background = MirrorProcess(self.spec.storage, self.run_dir, self.spec.name, directions, dists)
        # the run's own journal (no mirror process) gets its lines in bulk (see JOURNAL_EVERY_S); the parts then
        # hold each trial's constraint vector instead of its journal record
        self.defer_records = ga is not None and self.spec.storage is None and background is None
        self.pending: list[Any] = []  # generations stored and not yet in the journal (see _journal_flush)
        self._pending_trials = 0  # their trials
        self._flushed = time.perf_counter()
        # the stored trials for finalize, without the journal records (finalize drops them; ~2 KB per trial)
        # (frames, or the columns of generations written as raw columns: turned into one frame at the end)
        self.frames: list[Any] = [] if prior is None else [without_internal(prior)]
        # makes one frame of every FRAME_EVERY generations' columns while the run goes on (`_generations`)
        self._framer = thread_pool("dse-frames")
        try:
            return self._loop(ga, study, parts, mirror, background, tracker, meta, model_changed, n_batches, done,
                              resumed_from, dists, t0)
        except BaseException:
            with contextlib.suppress(Exception):  # the loop's own error is the one to report
                mirror.close()
            with contextlib.suppress(Exception):
                parts.close()
            raise
        finally:
            self._framer.shutdown(cancel_futures=True)
            if background is not None:
                background.close()
            writer_lock.close()

    def _loop(self, ga, study, parts, mirror, background, tracker, meta, model_changed, n_batches, done,
              resumed_from, dists, t0):
        """Batches until the budget or timeout; then the run's summary."""
        memo: dict[int, list] = {}
        isp = optuna.search_space.IntersectionSearchSpace()
        batch_size = self.spec.effective_batch
        new = 0
        self._shown = -math.inf  # when on_progress was last called
        if ga is not None:
            new, done = self._generations(ga, parts, mirror, background, tracker, meta, n_batches, done, dists, t0,
                                          self._held)
            if self.model_process is not None:  # every result is in: it ends while the run finishes
                self.model_process.stop()
        while ga is None and self._more(done, t0):
            b = n_batches
            size = batch_size if self.budget is None else min(batch_size, self.budget - done)
            t_start = dt.datetime.now()
            seed = self.spec.seed if self.spec.sampler.kind == "qmc" else batch_seed(self.spec.seed, b)
            sampler = make_sampler(self.spec.sampler, seed)
            if hasattr(sampler, "set_generation"):
                sampler.set_generation(b, memo, isp, storage=self.storage, study_id=self.study_id)
            study.sampler = sampler
            attrs_before = dict(self.storage.get_study_system_attrs(self.study_id))
            trials = [study.ask() for _ in range(size)]
            rows = [self.space.suggest(t) for t in trials]
            cols = self.space.columns(rows)
            keys = design_keys(self.codec.encode(cols))
            results = self._evaluate_cached(cols, keys)
            df, values, states, cvecs, keyattrs = self._batch_frame(trials, cols, results, t_start,
                                                                    dt.datetime.now(), b, attrs_before)
            df = df.with_columns(pl.Series("repeat", self._repeats(keys)))
            parts.write(b, df)  # system of record first
            for t, v, st, cv, ua in zip(trials, values, states, cvecs, keyattrs):
                for k, c in zip(self.constraint_keys, cv):
                    t.set_constraint(k, c)
                for k, x in ua.items():
                    t.set_user_attr(k, x)
                if st == "COMPLETE":
                    study.tell(t, v)
                else:
                    study.tell(t, state=optuna.trial.TrialState.FAIL)
            mirror.append(study.get_trials(deepcopy=False)[trials[0].number:trials[-1].number + 1])
            core = without_internal(df)
            self.frames.append(core)
            n_batches += 1
            done += size
            new += size
            self._recorded(b, np.asarray(values, dtype=float), df["feasible"].to_numpy(), tracker, meta, done, new,
                           t0)

        def written() -> None:
            """Every part on disk and the Optuna mirror complete (the run ends then), before summary.json."""
            parts.close()
            mirror.close()
            if background is not None:
                background.close()
        wall = time.perf_counter() - t0
        extra = {"resumed_from": resumed_from, "storage": mirror.location,
                 "ray_start_s": round(getattr(self.executor, "ray_start_s", 0.0), 3),
                 "ray_tasks": getattr(self.executor, "tasks", 0), "executor": self.executor.kind,
                 "ray": getattr(self.executor, "stats", dict)(),
                 "model_changed_on_resume": model_changed and resumed_from > 0,
                 # every trial is recorded; a trial whose design was asked before reuses the stored result
                 # (the `repeat` column marks them): the model evaluated `designs_evaluated` designs this run
                 "designs_evaluated": self.evaluated, "cache_hits": new - self.evaluated}
        stored = _stored_frame(self.frames)
        if ga is not None and self.defer_records:
            # the last generations' lines, built and appended by the mirror's thread while finalize runs (after the
            # stored frame: polars' thread pool busy with those lines made its concatenation wait, ~2 ms of the run's end)
            self._journal_flush(mirror)
        front = None  # the front flags of the stored rows (in trial order), from the front tracked as they were stored
        if stored is not None and tracker.n == stored.height:
            front = np.zeros(tracker.n, dtype=bool)
            front[tracker.front_rows] = True
        summary = finalize(self.run_dir, meta, wall_time_s=wall, trials_this_run=new, extra=extra, parts=stored,
                           before_summary=written, front=front, started=t0)
        return RunResult(self.run_dir, summary, resumed_from)

    def _generations(self, ga, parts, mirror, background, tracker, meta, b, done, dists, t0,
                     held=()) -> tuple[int, int]:
        """The array NSGA-II's generations until the budget or timeout; returns (trials run, trials done).

        The sampler breeds generation g from its population after generation g - 1 - `ga.lag` (BREED_LAG), so
        generation g is asked before the results of the `lag` generations before it are in: up to lag + 1
        generations are in flight, and with a model process (`ModelProcess`) the model evaluates them one after
        the other on another CPU while this process scores, selects, breeds and stores the ones before.
        Per generation: its model results → objectives, constraints and fitness → the sampler selects → the
        next generation is bred and its new designs go to the model at once → this generation's records and
        part are built and written, its journal lines appended. With a model process, the results of a
        generation's designs (reused or evaluated) and their scores come from it (`_child_work`). In-process the
        same steps run one after the other; either way the results are the same, and a killed run loses at most
        the generation being stored (plus those in flight in the model, never stored): a rerun replays the stored
        generations and asks them again. `held`: on a resume, the last `lag` stored generations as (X, F, cv), not
        yet observed (see `_replay`).

        With a model process that evaluates plain chunks (`MODEL_PROCESS_PAIRS`), the generations in flight go to it
        together once they are all asked (`_dispatch`: one model call, as in-process), and the generations collected
        before are stored only then (`deferred`), so that their stores overlap that model call; the parts are
        written in generation order, and a killed run loses the generations collected and not yet stored (at most
        lag + 1) and those in flight, evaluated or not: at most one pair of evaluated generations more than in one
        process, where a pair's model call waits for the stores before it."""
        new = 0
        lag = ga.lag
        self._dists = dists  # (for `_stored`)
        mp = self.model_process
        pairs = mp is not None and mp.work is None
        if (mp is None or pairs) and getattr(self.executor, "kind", "") == "serial" and is_pure(self.evaluator):
            self._together = []  # in-process: generations in flight evaluated together (_evaluate_together)
        else:
            pairs = False
        deferred: list[tuple] = []  # with `pairs`: generations observed, stored after the next dispatch
        flight: collections.deque = collections.deque(("stored", *h) for h in held)
        asked = done  # trials stored or in flight
        unflushed = 0  # in-process: parts written last with flush=False (at most lag of them, see store_first)

        def ask_next() -> None:
            nonlocal b, asked
            item = self._ask(ga, b, asked)
            flight.append(item)
            b += 1
            asked += len(item[3])
            if pairs and self._together and (len(self._together) > lag or not self._more(asked, t0)):
                self._dispatch()  # every generation in flight not evaluated yet: to the model process at once

        while True:
            while len(flight) <= lag and self._more(asked, t0):
                ask_next()
            if not flight:
                break
            item = flight.popleft()
            if item[0] == "stored":  # a resumed run's stored generation, observed when the live run did
                ga.observe(*item[1:])
                continue
            g, X, cols, keys, t_start, collect = item
            n = len(keys)
            sc = collect()
            t_done = dt.datetime.now()
            if pairs:
                ga.observe(X, *sc["fitness"])
                if len(flight) <= lag and self._more(asked, t0):
                    ask_next()  # (and, once the generations in flight are all asked, dispatched)
                deferred.append((g, X, cols, keys, sc, t_start, t_done))
                if self._together and flight:
                    continue  # stored once the next generations are dispatched (their model call overlaps the stores)
                for i, d in enumerate(deferred):  # (one model call's generations: one flush, the last one's)
                    done, new = self._finish(parts, mirror, background, tracker, meta, len(flight) + len(deferred) - 1
                                             - i, asked, t0, done, new, *d, flush=i == len(deferred) - 1)
                deferred.clear()
                continue
            # in-process, the generations in flight are evaluated together: when the next one's results came with
            # this one's, its part follows this one's soon (~2 ms later), so this part is written before the sampler
            # observes this generation and breeds the next one, and without a flush of its own: the next one's flush
            # covers both (one fdatasync per model call, by PartStore's thread, which the next model call overlaps;
            # at most the parts of one model call, lag + 1, not yet on disk; generations without new designs, not in a
            # model call, count as the next one's)
            store_first = self._together is not None and not self._together and bool(flight)
            if store_first:
                flush = unflushed == lag
                data, Y, records = self._store(parts, g, done, X, cols, keys, sc, t_start, t_done, flush=flush)
                unflushed = 0 if flush else unflushed + 1
            ga.observe(X, *sc["fitness"])
            if len(flight) <= lag and self._more(asked, t0):
                ask_next()  # the model starts on it now
            if not store_first:
                data, Y, records = self._store(parts, g, done, X, cols, keys, sc, t_start, t_done)
                unflushed = 0
            done, new = self._stored(mirror, background, tracker, meta, len(flight), asked, t0, done, new, g, n, sc,
                                     data, Y, records)
        for i, d in enumerate(deferred):
            done, new = self._finish(parts, mirror, background, tracker, meta, len(deferred) - 1 - i, asked, t0, done,
                                     new, *d, flush=i == len(deferred) - 1)
        return new, done

    def _finish(self, parts, mirror, background, tracker, meta, ahead, asked, t0, done, new, g, X, cols, keys, sc,
                t_start, t_done, flush: bool = True) -> tuple[int, int]:
        """Store generation `g` (`_store`), then what follows its part (`_stored`); returns (done, new)."""
        data, Y, records = self._store(parts, g, done, X, cols, keys, sc, t_start, t_done, flush)
        return self._stored(mirror, background, tracker, meta, ahead, asked, t0, done, new, g, len(keys), sc, data,
                            Y, records)

    def _stored(self, mirror, background, tracker, meta, ahead, asked, t0, done, new, g, n, sc, data, Y,
                records) -> tuple[int, int]:
        """After generation `g`'s part is written (`n` trials; `done`, `new`: the run's trials stored and run before
        it; `ahead`: the generations asked and not stored yet besides it): its journal lines, its columns for finalize
        (framed by a thread), its front and progress; returns (done, new) with it."""
        done += n
        new += n
        if background is not None:
            background.sync(g)
        elif self.defer_records:
            self.pending.append(records)
            self._pending_trials += n
            to_come = None if self.budget is None else self.budget - done
            if self._pending_trials >= JOURNAL_EVERY_TRIALS or \
                    time.perf_counter() - self._flushed >= JOURNAL_EVERY_S or (
                    to_come is not None and to_come <= JOURNAL_LAST_TRIALS < to_come + self._pending_trials):
                self._journal_flush(mirror)
        else:
            mirror.add_rows(columns_frame(_listed(data)), self._dists, records)
        self.frames.append({k: v for k, v in data.items() if k not in INTERNAL_COLUMNS})
        # the generations not framed yet, framed by the thread: every FRAME_EVERY, and when FRAME_LAST generations of
        # the budget are still to come (else before the last generation, when its asking is over and it is the one left
        # in flight), so that the run's end frames those alone
        waiting = 0  # generations' columns at the end of self.frames (at most FRAME_EVERY)
        for f in reversed(self.frames):
            if not isinstance(f, dict) or waiting == FRAME_EVERY:
                break
            waiting += 1
        to_come = None if self.budget is None else -(-(self.budget - done) // self.spec.effective_batch)
        if waiting == FRAME_EVERY or (waiting > 1 and (to_come == FRAME_LAST or (
                ahead == 1 and not self._more(asked, t0) and (to_come is None or to_come > FRAME_LAST)))):
            self.frames[-waiting:] = self._framer.submit(_stored_frame, self.frames[-waiting:]),
            tracker.merge_behind(self._framer.submit)  # (the front so far, for finalize's front flags)
        self._recorded(g, Y, sc["feasible"], tracker, meta, done, new, t0)
        return done, new

    def _store(self, parts: PartStore, g: int, done: int, X: np.ndarray, cols: dict[str, np.ndarray],
               keys: list[bytes], sc: dict[str, Any], t_start: dt.datetime, t_done: dt.datetime,
               flush: bool = True) -> tuple:
        """Write generation `g` (its trials numbered from `done`) as its part: (its columns, objective matrix,
        journal records) as `_array_batch` gives them. `flush=False`: a generation of a model call but its last,
        whose part's flush covers this one's (`PartStore`)."""
        data, Y, _, records = self._array_batch(done, X, cols, sc, self._repeats(keys), t_start, t_done, g)
        try:
            parts.write_columns(g, data, flush=flush)  # system of record first
        except ColumnsError:  # a column the raw format cannot hold (e.g. a user model's odd values)
            parts.write(g, columns_frame(_listed(data)), flush=flush)
        return data, Y, records

    def _ask(self, ga: Any, b: int, done: int) -> tuple:
        """Breed batch `b` (`done`: trials stored or asked before it) and hand its new designs to the model: (b, X,
        knob columns, design keys, start time, the callable that returns its scores as `_scored` gives them).
        With a model process, the generation goes there whole: the child reuses the results of the designs it
        evaluated before, evaluates the others and scores the generation (`_child_work`), so that this process only
        reads the scores."""
        size = self.spec.effective_batch if self.budget is None else min(self.spec.effective_batch,
                                                                         self.budget - done)
        t_start = dt.datetime.now()
        X, cols = ga.ask(np.random.default_rng(batch_seed(self.spec.seed, b)), size)
        keys = ga.keys_of(X)  # (`design_keys`, kept by the sampler)
        n = len(keys)
        mp = self.model_process
        if mp is not None and mp.alive and mp.work is not None:
            mp.submit(cols, X)

            def collect_scored() -> dict[str, Any]:
                got = mp.result()
                if got is None:  # the model process died (it said so): this generation in-process
                    return self._scored(cols, self._evaluate_cached(cols, keys), n)
                if got[0] == "raise":  # the study's error found while scoring (e.g. a constraint that fails)
                    raise got[1]
                _, sc, evaluated = got
                self.evaluated += evaluated
                sc["metrics"] = unpack_columns(sc["metrics"])
                return sc
            return b, X, cols, keys, t_start, collect_scored
        job = self._submit_cached(cols, keys)
        return b, X, cols, keys, t_start, lambda: self._scored(cols, job(), n)

    def _child_work(self, batches: list[tuple[dict[str, np.ndarray], np.ndarray]]) -> list[tuple]:
        """In the model process (`ModelProcess`'s `work`, on its copy of this runner, forked at the run's start):
        the generations received together, each (knob columns, knob matrix), evaluated as an in-process run
        evaluates them (each design once: the results of designs evaluated before are reused, the generations'
        new designs evaluated with one model call) and scored (`_scored`); per generation ((`"scored"`, its scores
        with the metrics packed, designs evaluated) or (`"raise"`, the study's error), model CPU s, model calls)."""
        if getattr(self, "_in_child", None) is None:  # the first generations: this copy evaluates in-process
            self._in_child = [0.0, 0]  # model CPU s and calls since the last reply
            self.model_process = None
            self.cache = ResultCache()
            self._flying = set()
            self._together = []
            self.evaluated = 0
            evaluate = self._evaluate

            def timed(cols: dict[str, np.ndarray]) -> list:
                t = time.thread_time()
                try:
                    return evaluate(cols)
                finally:
                    self._in_child[0] += time.thread_time() - t
                    self._in_child[1] += 1
            self._evaluate = timed
        jobs = []
        for cols, X in batches:
            before = self.evaluated
            collect = self._submit_cached(cols, design_keys(X))
            jobs.append((cols, len(X), collect, self.evaluated - before))
        out = []
        for cols, n, collect, evaluated in jobs:
            try:
                before = self.evaluated
                sc = self._scored(cols, collect(), n)
                sc["metrics"] = pack_columns(sc["metrics"])
                reply: tuple = ("scored", sc, evaluated + self.evaluated - before)
            except Exception as exc:  # noqa: BLE001 - raised in the run's process, as there in-process
                reply = ("raise", exc)
            out.append((reply, *self._in_child))
            self._in_child = [0.0, 0]
        return out

    def _recorded(self, b: int, Y: np.ndarray, feasible: np.ndarray, tracker: FrontTracker, meta: Any, done: int,
                  new: int, t0: float) -> None:
        """After batch `b` is stored: the live front, the derived reference point, the progress callback."""
        tracker.add(Y, feasible)
        if tracker.new_reference:  # derived from this first feasible batch: fixed and stored for the run
            set_reference(self.run_dir, meta, self.objectives, tracker.ref)
            tracker.new_reference = False
        now = time.perf_counter()
        if self.on_progress and (now - self._shown >= PROGRESS_EVERY_S or not self._more(done, t0)):
            self._shown = now
            self.on_progress(Progress(self.spec.name, done, self.budget, now - t0, new,
                                      tracker.n_feasible, len(tracker.front), tracker.hypervolume, b))

    def _repeats(self, keys: list[bytes]) -> np.ndarray:
        """Per trial: its design was asked before in this run (a pure function of the stored trials)."""
        n = len(keys)
        out = np.fromiter(map(self.seen.__contains__, keys), dtype=bool, count=n)
        if len(set(keys)) < n:  # a design twice in the batch: its later copies repeat it
            first = {k: i for i, k in reversed(list(enumerate(keys)))}  # each design's first row in the batch
            out |= np.fromiter(map(first.__getitem__, keys), dtype=np.int64, count=n) != np.arange(n)
        self.seen.update(keys)
        return out

    def _evaluate_cached(self, cols: dict[str, np.ndarray], keys: list[bytes]) -> list:
        """Evaluate each distinct design of the batch not seen before, once, and reuse stored results for
        the others (results as `_evaluate` gives them)."""
        return self._submit_cached(cols, keys)()

    def _submit_cached(self, cols: dict[str, np.ndarray], keys: list[bytes]) -> Callable[[], list]:
        """`_evaluate_cached` in two steps: the designs not stored yet go to the model now (`_submit`); the
        returned callable waits for them and merges them with the stored results (and stores them). Batches are
        collected in the order they were submitted. A design already on its way to the model in a batch
        submitted before (in flight, `self._flying`) is not sent again: its result is in the store once that
        batch is collected (else, its evaluation failed or the store is full, it is evaluated then)."""
        n = len(keys)
        src = self.cache.find(keys)
        miss = np.flatnonzero(src < 0).tolist()
        flying = self._flying
        mk = [keys[i] for i in miss]
        later: list[int] = []
        if flying and not flying.isdisjoint(mk):
            later = [i for i, k in zip(miss, mk) if k in flying]
            src[later] = -2
            miss = [i for i, k in zip(miss, mk) if k not in flying]
            mk = [keys[i] for i in miss]
        first: dict[bytes, int] = dict(zip(reversed(mk), reversed(miss)))  # each new design's first row in the batch
        pos = np.full(n, -1, dtype=np.int64)  # row of the batch's first copy of a design not in the cache
        if miss:  # (each its own first copy when the batch's new designs are distinct)
            pos[miss] = miss if len(first) == len(miss) else [first[k] for k in mk]
        new_idx = np.asarray(sorted(first.values()), dtype=np.int64)
        if new_idx.size == 0 and not later and not self.cache.store:
            return self._submit(cols)
        # (every row new: the batch's columns as they are)
        job = self._submit(cols if new_idx.size == n else take(cols, new_idx)) if new_idx.size else list
        self.evaluated += int(new_idx.size)
        if not self.cache.full:
            flying.update(first)

        def collect() -> list:
            sub, idx = job(), new_idx
            flying.difference_update(first)
            if later:  # the batches before are collected: their designs are stored
                at = self.cache.find([keys[i] for i in later])
                src[later] = at
                gone: dict[bytes, int] = {}  # evaluated before but not stored (the evaluation failed, store full)
                for i, a in zip(later, at.tolist()):
                    if a < 0:
                        pos[i] = gone.setdefault(keys[i], i)
                if gone:
                    more = np.asarray(sorted(gone.values()), dtype=np.int64)
                    self.evaluated += int(more.size)
                    sub = [*sub, *((slice(idx.size + s.start, idx.size + s.stop), r)
                                   for s, r in self._evaluate(take(cols, more)))]
                    idx = np.concatenate([idx, more])
            return self._merge_cached(keys, src, pos, idx, sub)
        return collect

    def _merge_cached(self, keys: list[bytes], src: np.ndarray, pos: np.ndarray, new_idx: np.ndarray,
                      sub: list) -> list:
        """The batch's results from the stored ones (`src`: store row per design, -1 = new) and the model's
        results `sub` for its new designs `new_idx` (`pos`: each new design's first copy in the batch)."""
        n = len(keys)
        errors: dict[int, EvalError] = {}
        done: list[tuple[dict, list[int]]] = []  # each chunk's results (normalized) and its first-copy rows
        for s, r in sub:
            rows = new_idx[s].tolist()
            if isinstance(r, EvalError):
                errors.update(dict.fromkeys(rows, r))
            elif rows:
                r = normalize(r, len(rows))
                done.append((r, rows))
                self.cache.add(keys if len(rows) == n else [keys[row] for row in rows], r)  # (all rows: in order)
        template = (done[0][0] if done else None) or self.cache.store
        if len(sub) == 1 and not errors and new_idx.size == n and sub[0][0] == slice(0, n):
            # every design of the batch new and evaluated by one chunk in batch order (most generations): its results
            # are the batch's, as gathered back from the store below when every column has the store's type (`n` new
            # designs: each row is the first copy of its design, pos[i] = i, and one chunk of them is new_idx =
            # 0..n-1 in order)
            store = self.cache.store  # (`template`: the chunk's results, normalized)
            if len(template) == len(store) and self.cache.same_types(template):
                return [(slice(0, n), template)]
        if not errors and not self.cache.full:  # every design of the batch is stored now: one gather per column
            at = self.cache.find(keys)
            if (at >= 0).all():
                return [(slice(0, n), Normalized(self.cache.rows_of(at, template)))]
        merged: dict[str, np.ndarray] = {}
        hit = src >= 0
        for k, v in template.items():
            dtype = np.asarray(v).dtype
            col = np.empty(n, dtype=object if dtype.kind in "OUS" else dtype)
            if hit.any():
                col[hit] = self.cache.store[k][src[hit]]
            merged[k] = col
        fresh: dict[int, tuple[dict, int]] = {}  # first-copy row -> (chunk metrics, row in chunk)
        for r, rows in done:
            fresh.update({row: (r, k) for k, row in enumerate(rows)})
        chunks: dict[int, list] = {}
        for i in np.flatnonzero(~hit).tolist():
            f = pos[i]
            if f in errors:
                errors[i] = errors[f]
            else:
                r, k = fresh[f]
                chunks.setdefault(id(r), [r, [], []])
                chunks[id(r)][1].append(i)
                chunks[id(r)][2].append(k)
        for r, rows, ks in chunks.values():
            rows_a, ks_a = np.asarray(rows, np.int64), np.asarray(ks, np.int64)
            for k in merged:
                merged[k][rows_a] = np.asarray(r[k])[ks_a]
        results: list = []
        start = 0
        while start < n:  # contiguous runs of rows that share an error, or that have results
            e = errors.get(start)
            stop = start + 1
            while stop < n and errors.get(stop) is e:
                stop += 1
            s = slice(start, stop)
            results.append((s, e if e is not None else Normalized({k: v[s] for k, v in merged.items()})))
            start = stop
        return results

    def _submit(self, cols: dict[str, np.ndarray]) -> Callable[[], list]:
        """Start evaluating a batch: in the model process when there is one (it runs while this process goes on),
        else when the returned callable is called; that callable returns the results as `_evaluate` does."""
        mp = self.model_process
        if self._together is not None and len(next(iter(cols.values()), [])):
            job: list = [cols, None]  # the columns, their results once evaluated (then what `_dispatch` adds)
            self._together.append(job)

            def collect_together() -> list:
                if job[1] is None:
                    if len(job) > 2:
                        self._receive(job[2])
                    else:
                        self._evaluate_together()
                return job[1]
            return collect_together
        if mp is None or not mp.alive:
            return lambda: self._evaluate(cols)
        mp.submit(cols)

        def collect() -> list:
            r = mp.result()
            if r is None:  # the model process died (it said so): this batch and the next ones in-process
                return self._evaluate(cols)
            return self._retried(cols, [(slice(0, len(next(iter(cols.values()), []))), r)])
        return collect

    def _dispatch(self) -> None:
        """Send every batch submitted and not evaluated yet (`self._together`) to the model process as one chunk
        (one model call there, as `_evaluate_together` makes in-process); each batch's results are then read by
        `_receive` when the first of them is collected."""
        mp = self.model_process
        if mp is None or not mp.alive or not self._together:
            return
        jobs, self._together = self._together, []
        cols = concat([j[0] for j in jobs])
        mp.submit(cols)
        box = [jobs, cols]
        for j in jobs:
            j.append(box)

    def _receive(self, box: list) -> None:
        """The model process's results of a chunk `_dispatch` sent, handed to each of its batches (evaluated
        in-process if the model process died)."""
        jobs, cols = box
        if jobs[0][1] is not None:
            return
        r = self.model_process.result() if self.model_process is not None else None
        results = self._evaluate(cols) if r is None else self._retried(cols, [(slice(0, len(next(iter(cols.values())))),
                                                                              r)])
        for job, mine in zip(jobs, evaluate_jointly(lambda _: results, [j[0] for j in jobs])):
            job[1] = mine

    def _evaluate_together(self) -> None:
        """Evaluate every batch submitted in-process and not evaluated yet (`self._together`: the one collected
        first, then those in flight behind it) with one model call (`evaluate_jointly`), and hand each its rows of
        the results: the array NSGA-II's runs without a model process evaluate two generations per call (its lag
        keeps the next one asked before this one's results are needed). Only for an evaluator that states it is
        a pure function of the design (`is_pure`; else each batch is evaluated alone)."""
        jobs, self._together = self._together, []
        for job, mine in zip(jobs, evaluate_jointly(self._evaluate, [j[0] for j in jobs])):
            job[1] = mine

    def _evaluate(self, cols: dict[str, np.ndarray]) -> list:
        """Evaluate a batch; chunks lost to the infrastructure (a dead worker, a lost node) are evaluated
        again, up to RETRIES times, so a transient fault costs no trial."""
        return self._retried(cols, self.executor.evaluate(cols))

    def _retried(self, cols: dict[str, np.ndarray], results: list) -> list:
        """`results` of a batch with the chunks lost to the infrastructure evaluated again (`_evaluate`)."""
        for _ in range(RETRIES):
            if not any(isinstance(r, EvalError) and r.transient for _, r in results):
                break
            again = []
            for s, r in results:
                if isinstance(r, EvalError) and r.transient:
                    log.warning("re-evaluating %d designs after a transient failure: %s", s.stop - s.start, r)
                    sub = self.executor.evaluate(take(cols, s))
                    again += [(slice(s.start + a.start, s.start + a.stop), x) for a, x in sub]
                else:
                    again.append((s, r))
            results = again
        return results

    def _rerun_transient(self, prior: pl.DataFrame, parts: PartStore) -> tuple[pl.DataFrame, list[int]]:
        """Evaluate again the stored trials that failed because of the infrastructure (reason starts with
        TRANSIENT_MARK) and rewrite their parts, so that a resumed run loses no trial to a past fault.
        Returns the stored trials and the numbers of the trials re-run."""
        if "reason" not in prior.columns:
            return prior, []
        mask = (prior["state"] == "FAIL") & prior["reason"].fill_null("").str.starts_with(TRANSIENT_MARK)
        if not mask.any():
            return prior, []
        rerun = [int(t) for t in prior.filter(mask)["trial"].to_list()]
        for b in sorted(set(prior.filter(mask)["batch"].to_list())):
            part = parts.read(b)
            m = (part["state"] == "FAIL") & part["reason"].fill_null("").str.starts_with(TRANSIENT_MARK)
            old = part.filter(m)
            cols = self.space.columns(old.select(self.space.names).to_dicts())
            n = old.height
            sc = self.score(cols, self._evaluate(cols), n)
            states = ["FAIL" if f else "COMPLETE" for f in sc["failed"]]
            env = {**cols, **sc["metrics"]}
            key_cols = {k: env[k] for k in self.key_metric_names()
                        if k in env and np.asarray(env[k]).dtype.kind in "biuf"}
            base = {k: old[k] for k in ("trial", "generation", "batch", "datetime_start", "datetime_complete")}
            base["state"] = states
            if "_optuna" not in old.columns or old["_optuna"].null_count() == n:  # the records are rebuilt
                # from the columns (`stored_records`)
                new = self.frame(base, cols, sc).with_columns(pl.Series(CONSTRAINTS_COLUMN, sc["cmat"]))
                if "repeat" in old.columns:
                    new = new.with_columns(old["repeat"])
                parts.write(b, pl.concat([part.filter(~m), new], how="diagonal_relaxed").sort("trial"))
                log.warning("re-ran %d trials of batch %d that had failed for a transient reason", n, b)
                continue
            blobs = []
            for i, blob in enumerate(old["_optuna"].to_list()):
                o = json.loads(blob)
                set_outcome(o, states[i], [float(x) for x in sc["Y"][i]])
                o["system_attrs"].update({f"constraints:{k}": float(c)
                                          for k, c in zip(self.constraint_keys, sc["cmat"][i])})
                ua = {k: v for k, v in o["user_attrs"].items() if k not in ("reason", "feasible")}
                ua["feasible"] = bool(sc["feasible"][i])
                if sc["reason"][i]:
                    ua["reason"] = str(sc["reason"][i])
                if not sc["failed"][i]:
                    ua.update({k: v[i].item() for k, v in key_cols.items()})
                o["user_attrs"] = ua
                blobs.append(json.dumps(o, separators=(",", ":")))
            new = self.frame(base, cols, sc).with_columns(pl.Series("_optuna", blobs, dtype=pl.String),
                                                           old["_study_attrs"])
            if "repeat" in old.columns:
                new = new.with_columns(old["repeat"])
            parts.write(b, pl.concat([part.filter(~m), new], how="diagonal_relaxed").sort("trial"))
            log.warning("re-ran %d trials of batch %d that had failed for a transient reason", n, b)
        return parts.read_all(), rerun

    def _more(self, done: int, t0: float) -> bool:
        if self.budget is not None and done >= self.budget:
            return False
        if self.timeout is not None and time.perf_counter() - t0 >= self.timeout:
            return False
        return True

    def reference(self) -> list[float] | None:
        """The hypervolume reference point stated in the study (None: derived from the first feasible batch)."""
        rp = self.spec.reference_point
        return [rp[m] for m in self.metrics] if rp else None

    def score(self, cols: dict[str, np.ndarray], results: list, n: int) -> dict[str, Any]:
        """Merge chunk results and derive objectives, constraint matrix, feasibility and reason per row."""
        metrics: dict[str, np.ndarray] = {}
        err = np.full(n, "", dtype=object)
        failed = np.zeros(n, dtype=bool)
        ok_parts = [(s, r) for s, r in results if not isinstance(r, EvalError)]
        # each metric's column type, from the first chunk's results: strings as objects
        types, same = self._column_types(ok_parts[0][1]) if ok_parts else ({}, False)
        whole = normalize(ok_parts[0][1], n) if len(results) == 1 and ok_parts and results[0][0] == slice(0, n) \
            else None
        shape = (n,)
        if whole is not None and (all([v.shape == shape for v in whole.values()]) if whole is ok_parts[0][1] else
                                  all(whole[k].shape == shape for k in types if k in whole)):
            # one chunk holds the batch (in-process; every design reused or evaluated at once): its columns are
            # the metrics (converted where their type differs; a column with a non-finite value is copied below)
            if same and whole is ok_parts[0][1]:  # (normalized already: every column of its type)
                metrics = dict(whole)
            else:
                metrics = {k: (whole[k] if whole[k].dtype == t else np.array(whole[k], dtype=t)) if k in whole
                           else np.zeros(n, dtype=t) for k, t in types.items()}
        else:
            metrics = {k: np.full(n, "", dtype=object) if t == object else np.zeros(n, dtype=t)
                       for k, t in types.items()}
            for s, r in results:
                if isinstance(r, EvalError):
                    failed[s] = True
                    err[s] = (TRANSIENT_MARK if r.transient else "") + str(r)
                else:
                    r = normalize(r, s.stop - s.start)
                    for k in metrics:
                        if k in r:
                            metrics[k][s] = r[k]
        floats = [metrics[k] for k in self._float_names(types)]  # (every metric's column is of its type)
        if floats and not np.isfinite(np.concatenate(floats)).all():
            for k, v in metrics.items():  # a model bug must not put NaN/inf in results.parquet or on a front
                if v.dtype.kind == "f":
                    bad_k = ~np.isfinite(v)
                    if bad_k.any():
                        failed |= bad_k
                        for i in np.flatnonzero(bad_k & (err == "")):
                            err[i] = "evaluation error: non-finite metric " + ", ".join(
                                m for m, col in metrics.items() if col.dtype.kind == "f" and not np.isfinite(col[i]))
                        metrics[k] = np.where(bad_k, 0.0, v)  # a copy: the chunk's column may be shared
        model_ok = metrics["feasible"] if "feasible" in metrics else np.zeros(n, dtype=bool)
        model_reason = metrics["reason"] if "reason" in metrics else err
        env = {**cols, **metrics}
        cmat = np.zeros((n, len(self.constraint_names)))
        cmat[:, 0] = np.where(model_ok, 0.0, 1.0)
        # failed rows hold zeros in place of metrics; with no metrics at all there is nothing to score. An
        # error here is a property of the study, not of a design (the probe should have found it): it stops
        # the study with a clear message instead of turning every trial infeasible
        scored = bool(metrics) and not failed.all()
        Y = np.zeros((n, len(self.metrics)))
        with np.errstate(all="ignore"):  # (once for every constraint and objective: ~4 us a context)
            for j, c in enumerate(self.constraints, start=1):
                if not scored:
                    cmat[:, j] = 1.0
                    continue
                try:
                    cmat[:, j] = np.broadcast_to(c.violation(env), (n,))
                except (KeyError, ValueError, TypeError, RecursionError, OverflowError) as exc:
                    raise DseUserError(f"constraint `{c.text}` cannot be evaluated: {type(exc).__name__}: {exc}; "
                                       "fix the study's constraints") from None
            for j, o in enumerate(self.objectives):
                if not scored:
                    Y[:, j] = np.nan
                    continue
                try:
                    # (a metric's own column: what `objective_values` reads, without its search of the names)
                    Y[:, j] = np.asarray(env[o.metric], dtype=float) if n and o.metric in env else \
                        objective_values(o, env) if n else objective_matrix(env, [o])[:, 0]
                except (KeyError, ValueError, TypeError, RecursionError, OverflowError) as exc:
                    raise DseUserError(f"objective `{o.metric}` cannot be evaluated: {type(exc).__name__}: {exc}; "
                                       "fix the study's objectives") from None
        # an expression objective may be undefined (x / 0) on a row the model already rejects: that row stays
        # an infeasible COMPLETE trial (objective told as 0), not an evaluation error
        ok = model_ok if model_ok.dtype == bool else model_ok.astype(bool)  # (read only)
        if not (np.isfinite(Y).all() and np.isfinite(cmat).all()):  # (else no row is bad: nothing to change)
            bad = (~np.isfinite(Y).all(axis=1) & ok) | ~np.isfinite(cmat).all(axis=1)
            failed |= bad
            err[bad & (err == "")] = "evaluation error: non-finite objective or constraint"
            cmat[~np.isfinite(cmat)] = 1e9
            Y[~np.isfinite(Y)] = 0.0
        # (Y and cmat are finite from here on: `_scored` relies on it)
        feasible = (cmat <= 0).all(axis=1)
        reason = np.full(n, "", dtype=object)
        # rows that did not fail (None: every row, most generations, whose masks then skip it)
        held = ~failed if failed.any() else None
        if held is not None:  # (a failed row is never feasible)
            feasible &= held
            reason[failed] = err[failed]
        rows = ~ok  # (the model's infeasible rows that did not fail: never feasible, cmat[:, 0] = 1)
        if held is not None:
            rows &= held
        if rows.any():  # the model's reason; a few distinct texts, converted once each
            texts = np.asarray(model_reason)[rows].tolist()
            index: dict[Any, int] = {}
            codes = [index.setdefault(t, len(index)) for t in texts]
            reason[rows] = np.array([str(t) or "infeasible" for t in index], dtype=object)[codes]
        rows = ~feasible & ok  # (not failed: a failed row is not feasible)
        if held is not None:
            rows &= held
        if rows.any() and len(self.constraint_names) == 2:
            # one constraint of the study's: the model's is met (ok, cmat[:, 0] = 0) and cmat is finite, so each of
            # these rows violates that one (cmat[:, 1] > 0): one pattern, one text
            reason[rows] = "violates " + self.constraint_names[1]
        elif rows.any():  # the violated constraints, one text per pattern of violations
            violated = cmat[rows, 1:] > 0
            if violated.shape[1] <= 62:  # each row's pattern of violations as one integer, numbered as first seen
                code = violated.astype(np.int64) @ (1 << np.arange(violated.shape[1], dtype=np.int64))
                seen: dict[int, int] = {}
                inverse = np.array([seen.setdefault(c, len(seen)) for c in code.tolist()], dtype=np.int64)
                patterns = [[j for j in range(violated.shape[1]) if c >> j & 1] for c in seen]
            else:
                flags, inverse = np.unique(violated, axis=0, return_inverse=True)
                patterns = [np.flatnonzero(p).tolist() for p in flags]
            text = ["violates " + "; ".join(self.constraint_names[j + 1] for j in p) for p in patterns]
            reason[rows] = np.array(text, dtype=object)[inverse.ravel()]
        return {"metrics": metrics, "Y": Y, "cmat": cmat, "failed": failed, "feasible": feasible, "reason": reason}

    def _float_names(self, types: dict[str, Any]) -> list[str]:
        """The metrics of float type among `types` (`_column_types`'), kept for the last set of types."""
        last = self.__dict__.get("_floats_last")
        if last is None or last[0] is not types:
            last = self._floats_last = (types, [k for k, t in types.items() if np.dtype(t).kind == "f"])
        return last[1]

    def _column_types(self, first: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Each metric's column type in `score` (`_column_type`) from a chunk's results `first`, and whether each of
        its columns has that type already; kept per run for the few sets of (metric, dtype) a run's chunks have."""
        try:
            names, dtypes = tuple(first), [v.dtype for v in first.values()]
        except AttributeError:  # (a column that is not an array)
            names = dtypes = None
        last = self.__dict__.get("_types_last")  # (the last chunk's: compared first, object by object, no hashing)
        if last is not None and names is not None and last[0] == names and last[1] == dtypes:
            return last[2]
        key = None if names is None else (names, tuple(dtypes))
        memo = self.__dict__.setdefault("_types_memo", {})
        hit = memo.get(key) if key is not None else None
        if hit is None:
            types = {k: _column_type(np.asarray(v).dtype) for k, v in first.items()}
            same = key is not None and all(np.asarray(v).dtype == t for v, t in zip(first.values(), types.values()))
            hit = (types, same)
            if key is not None and len(memo) < 64:
                memo[key] = hit
        if names is not None:
            self._types_last = (names, dtypes, hit)
        return hit

    def frame(self, base: dict[str, Any], cols: dict[str, np.ndarray], sc: dict[str, Any],
              extra: dict[str, Any] | None = None, violation: np.ndarray | None = None) -> pl.DataFrame:
        """One part as a frame: `columns_frame` of `frame_data`."""
        data = self.frame_data(base, cols, sc, extra, violation)
        for k, v in cols.items():
            if v.dtype == object:
                data[k] = _object_series(k, v)
        return columns_frame(data)

    def frame_data(self, base: dict[str, Any], cols: dict[str, np.ndarray], sc: dict[str, Any],
                   extra: dict[str, Any] | None = None, violation: np.ndarray | None = None, *,
                   coded: bool = False, X: np.ndarray | None = None) -> dict[str, Any]:
        """One part's columns: bookkeeping columns, knobs, metrics, violation (`violation`: already summed),
        feasible, reason (then `extra`). Text columns (metrics of objects, `reason`) as lists of texts, or with
        `coded` as `Coded` dictionaries (for `encode_columns` and `frame_of`; `X`: the designs' knob matrix, whose
        choice indices code the categorical knobs, see `_knob_codes`)."""
        def texts(v: np.ndarray) -> Any:
            if not coded:
                return [str(x) for x in v]
            values, codes = dictionary(v)
            return Coded([str(x) for x in values], codes)

        data: dict[str, Any] = dict(base)
        data.update(cols)
        if coded:  # text knobs (a choice's name, a fixed knob's value) coded once, for the part and for finalize
            known = self._knob_codes(X, cols) if X is not None else {}
            for k, v in cols.items():
                if isinstance(v, np.ndarray) and v.dtype.kind in "UO" and len(v):
                    data[k] = known[k] if k in known else Coded(*dictionary(v))
        for k, v in sc["metrics"].items():
            if k in ("feasible", "reason") or k in data:
                continue
            data[k] = texts(v) if v.dtype == object else v
        for j, o in enumerate(self.objectives):  # an expression objective is stored as its own column
            if o.is_expression:
                data[o.metric] = sc["Y"][:, j]
        data["constraint_violation"] = np.maximum(sc["cmat"], 0).sum(axis=1) if violation is None else violation
        data["feasible"] = sc["feasible"]
        data["reason"] = texts(np.asarray(sc["reason"], dtype=object))
        data.update(extra or {})
        return data

    def _knob_codes(self, X: np.ndarray, cols: dict[str, np.ndarray]) -> dict[str, Coded]:
        """The text knob columns `dictionary` would code, coded without reading their texts: an always-active
        categorical knob by its choice index in `X` (its choices as the values), a fixed knob by one value."""
        n = len(X)
        if self._codes_of is None:
            self._codes_of = (
                [(j, k.name, list(k.dist.choices)) for j, k in enumerate(self.codec.knobs)
                 if k.kind == "categorical" and k.when is None],
                {f: [v] for f, v in self.space.fixed.items()})
        choices, fixed = self._codes_of
        out: dict[str, Coded] = {}
        for j, name, values in choices:
            if cols[name].dtype.kind in "UO":
                out[name] = Coded(values, X[:, j].astype(np.int32))
        if fixed:
            zeros = np.zeros(n, dtype=np.int32)
            for name, values in fixed.items():
                if name in cols and cols[name].dtype.kind in "UO":
                    out[name] = Coded(values, zeros)
        return out

    def key_metric_names(self) -> list[str]:
        """Metrics stored as Optuna trial user attributes (optuna-dashboard shows them): the objectives'
        and constraints' metrics."""
        if self._key_names is None:  # fixed for the run: the study's objectives and constraints
            names = [n for o in self.objectives for n in o.names()]
            names += [n for c in self.constraints for n in c.names]
            self._key_names = list(dict.fromkeys(names))
        return list(self._key_names)

    def _batch_frame(self, trials, cols, results, t_start, t_done, b, attrs_before):
        """The batch as a DataFrame (+ values, states, constraint vectors, key-metric user attributes)."""
        n = len(trials)
        sc = self.score(cols, results, n)
        failed, Y, cmat = sc["failed"], sc["Y"], sc["cmat"]
        states = ["FAIL" if f else "COMPLETE" for f in failed]
        attrs_after = self.storage.get_study_system_attrs(self.study_id)
        delta = {k: v for k, v in attrs_after.items() if attrs_before.get(k, object()) != v}
        gen_key = {"nsga2": "NSGAIISampler:generation", "nsga3": "NSGAIIISampler:generation"}.get(
            self.spec.sampler.kind, "")
        env = {**cols, **sc["metrics"]}
        key_cols = {k: env[k] for k in self.key_metric_names() if k in env and np.asarray(env[k]).dtype.kind in "biuf"}
        frozen = {ft.number: ft for ft in self.storage.get_all_trials(self.study_id, deepcopy=False)
                  if ft.number >= trials[0].number}
        opt_json, cvecs, values, gens, keyattrs = [], [], [], [], []
        for i, t in enumerate(trials):
            ft = frozen[t.number]
            sys_attrs = dict(ft.system_attrs)
            gens.append(int(sys_attrs.get(gen_key, b)))
            cv = [float(x) for x in cmat[i]]
            sys_attrs.update({f"constraints:{k}": c for k, c in zip(self.constraint_keys, cv)})
            vals = [float(x) for x in Y[i]]
            cvecs.append(cv)
            values.append(vals)
            ua = {"feasible": bool(sc["feasible"][i])}
            if sc["reason"][i]:
                ua["reason"] = str(sc["reason"][i])
            if not failed[i]:
                ua.update({k: v[i].item() for k, v in key_cols.items()})
            keyattrs.append(ua)
            opt_json.append(json.dumps({"params": t.params, "values": vals if states[i] == "COMPLETE" else None,
                                        "state": states[i], "system_attrs": sys_attrs,
                                        "user_attrs": {**ft.user_attrs, **ua}},
                                       separators=(",", ":")))
        base: dict[str, Any] = {
            "trial": np.array([t.number for t in trials], dtype=np.int64),
            "generation": np.array(gens, dtype=np.int64),
            "batch": np.full(n, b, dtype=np.int64),
            "state": states,
            "datetime_start": np.full(n, np.datetime64(t_start, "us")),
            "datetime_complete": np.full(n, np.datetime64(t_done, "us")),
        }
        df = self.frame(base, cols, sc).with_columns(
            pl.Series("_optuna", opt_json, dtype=pl.String),
            pl.Series("_study_attrs", [json.dumps(delta, default=str)] + [None] * (n - 1), dtype=pl.String))
        return df, values, states, cvecs, keyattrs

    def _scored(self, cols: dict[str, np.ndarray], results: list, n: int) -> dict[str, Any]:
        """`score` of a generation plus its total violation (`violation`) and its fitness for the sampler
        (`fitness`: `_fitness_of`, what `_fitness` reads back from its part)."""
        sc = self.score(cols, results, n)
        sc["violation"] = np.maximum(sc["cmat"], 0).sum(axis=1)
        sc["fitness"] = self._fitness_of(sc["Y"], sc["violation"], sc["failed"], finite=True)  # (`score`'s Y)
        return sc

    def _array_batch(self, first: int, X: np.ndarray, cols: dict[str, np.ndarray], sc: dict[str, Any],
                     repeat: np.ndarray, t_start: dt.datetime, t_done: dt.datetime, b: int
                     ) -> tuple[dict[str, Any], np.ndarray, tuple[np.ndarray, np.ndarray], Any]:
        """A generation of the array sampler (`sc`: its `_scored` results) as the columns of its part (`frame_data`
        plus the bookkeeping columns; `columns_frame` of them is the part as read back), its objective matrix
        (the values the part stores: `objective_matrix` of the part gives the same), its fitness for the sampler
        and its journal records.

        The records: each trial's journal record (params, values, constraints and attributes as the ask/tell loop
        records them; the Optuna mirror is made from them: `journal_lines`). With `defer_records` they are the
        arguments of `TrialRecords.batch` (a `_GenerationRecords`), turned into text in bulk by `_journal_flush`,
        and the part stores the constraint vectors (`_constraints`) they are rebuilt from on resume
        (`stored_records`); else the list of records, which the part also stores (`_optuna`)."""
        n = len(repeat)
        failed, Y, cmat = sc["failed"], sc["Y"], sc["cmat"]
        states = np.where(failed, "FAIL", "COMPLETE").tolist()
        env = {**cols, **sc["metrics"]}
        key_cols = {k: np.asarray(env[k]) for k in self.key_metric_names()
                    if k in env and np.asarray(env[k]).dtype.kind in "biuf"}
        start, complete = iso_utc(t_start), iso_utc(t_done)
        base: dict[str, Any] = {
            "trial": np.arange(first, first + n, dtype=np.int64),
            "generation": np.full(n, b, dtype=np.int64),
            "batch": np.full(n, b, dtype=np.int64),
            "state": Coded(["COMPLETE", "FAIL"], failed.astype(np.int32)),
            "datetime_start": np.full(n, np.datetime64(t_start, "us")),
            "datetime_complete": np.full(n, np.datetime64(t_done, "us")),
        }
        data = self.frame_data(base, cols, sc, {"repeat": repeat}, violation=sc["violation"], coded=True, X=X)
        if "feasible" in key_cols or "reason" in key_cols:  # a metric named like a user attribute: one by one
            blobs: Any = self._records_one_by_one(X, np.where(failed, "FAIL", "COMPLETE").tolist(), Y, cmat, sc,
                                                  key_cols, b, start, complete)
        else:  # (the reasons as the part codes them: the journal's thread encodes each distinct one, no pass per row)
            blobs = _GenerationRecords(X, failed, Y, cmat, sc["feasible"], data["reason"], key_cols, b, start,
                                       complete)
            if not self.defer_records:
                blobs = self._record_texts([blobs])
        if isinstance(blobs, _GenerationRecords):
            data[CONSTRAINTS_COLUMN] = cmat
        else:
            data["_optuna"], data["_study_attrs"] = blobs, [None] * n
        return data, Y, sc["fitness"], blobs

    def _record_texts(self, gens: list[Any]) -> list[str]:
        """The journal records of generations (`_array_batch`'s records: lists of texts or `_GenerationRecords`),
        in order; runs of `_GenerationRecords` with the same key metrics are turned into text by one
        `TrialRecords.batch`."""
        out: list[str] = []
        for texts in self._record_runs(gens):
            out.extend(texts)
        return out

    def _record_lines(self, gens: list[Any], head: str) -> list[bytes]:
        """The journal lines (`head` + record[1:], each ended by a newline) of `_record_texts(gens)`, each as the
        bytes the journal gets: runs of `_GenerationRecords` made by polars (`TrialRecords.batch(head=...)`), with
        no Python text per trial (the writer thread that builds them holds the interpreter lock less)."""
        out: list[bytes] = []
        for texts in self._record_runs(gens, head):
            out.extend(texts if texts and isinstance(texts[0], bytes) else
                       [(head + b[1:] + "\n").encode() for b in texts])
        return out

    def _record_runs(self, gens: list[Any], head: str | None = None) -> list[Any]:
        """`_record_texts` by runs: each list of texts as it is, each run of `_GenerationRecords` with the same key
        metrics turned into text by one `TrialRecords.batch` (with `head`: its journal lines, as bytes)."""
        out: list[Any] = []
        run: list[_GenerationRecords] = []

        def close_run() -> None:
            if run:
                out.append(self._batch_texts(run, head))
                run.clear()

        for g in gens:
            if not isinstance(g, _GenerationRecords):
                close_run()
                out.append(g)
                continue
            if run and [(k, v.dtype.kind) for k, v in run[0].key_cols.items()] != [
                    (k, v.dtype.kind) for k, v in g.key_cols.items()]:
                close_run()
            run.append(g)
        close_run()
        return out

    def _batch_texts(self, gens: list["_GenerationRecords"], head: str | None = None) -> list[str] | list[bytes]:
        """`TrialRecords.batch` of generations with the same key metrics, at once (with `head`: their journal
        lines, as bytes)."""
        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(g, name) for g in gens])

        X, Y, cmat = cat("X"), cat("Y"), cat("cmat")
        sizes = [len(g.failed) for g in gens]
        gen_key = "NSGAIISampler:generation"  # Optuna's key: optuna-dashboard and plain Optuna read it
        sys_cols = [(gen_key, np.repeat(np.array([g.b for g in gens], dtype=np.int64), sizes))] + [
            (f"constraints:{k}", cmat[:, j]) for j, k in enumerate(self.constraint_keys)]
        keys = list(gens[0].key_cols)
        key_items = [(k, np.concatenate([g.key_cols[k] for g in gens])) for k in keys]
        knobs = [(k.name, k.kind, X[:, j]) for j, k in enumerate(self.codec.knobs)]
        which = np.repeat(np.arange(len(gens)), sizes)  # each row's generation
        start, complete = ([g.start for g in gens], which), ([g.complete for g in gens], which)
        reasons = [g.reason for g in gens]
        if all(type(r) is Coded for r in reasons):  # (texts, each row's index): the texts the parts coded
            at = np.cumsum([0] + [len(r.values) for r in reasons[:-1]])
            reason: Any = ([str(v) for r in reasons for v in r.values],
                           np.concatenate([np.asarray(r.codes, dtype=np.int64) + a for r, a in zip(reasons, at)]))
        else:
            reason = np.concatenate([np.asarray(r.values, dtype=object)[np.asarray(r.codes)] if type(r) is Coded
                                     else np.asarray(r, dtype=object) for r in reasons])
        return self.records.batch(knobs, cat("failed"), Y, sys_cols, cat("feasible"), reason, key_items,
                                  start, complete, head=head)

    def _journal_flush(self, mirror: OptunaMirror) -> None:
        """The journal lines of the generations stored since the last flush, built and appended at once by the
        mirror's writer thread while the run goes on (one process, 10k trials: the run's main thread 0.78 -> 0.72
        CPU s; the lines are ~0.06 s of work the thread does beside it)."""
        if self.pending:
            gens, self.pending = self.pending, []
            mirror.add_records(lambda head: self._record_lines(gens, head), count=self._pending_trials)
        self._flushed = time.perf_counter()
        self._pending_trials = 0

    def stored_records(self, rows: pl.DataFrame) -> list[str]:
        """The journal records of stored rows (in trial order): the part's `_optuna` where it holds one, else
        rebuilt from the part's columns (knobs, objectives, state, `_constraints`, feasible, reason, key
        metrics, generation, times) as the live run built them."""
        if not hasattr(self, "records"):  # outside a run
            self.codec, self.records = KnobCodec(self.space), TrialRecords(self.space.distributions())
        rows = rows.sort("trial")
        have = rows["_optuna"] if "_optuna" in rows.columns else pl.Series([None] * rows.height, dtype=pl.String)
        missing = have.is_null().to_numpy()
        if not missing.any():
            return have.to_list()
        if CONSTRAINTS_COLUMN not in rows.columns:
            raise DseUserError(f"{self.run_dir}/parts: a stored trial has neither its journal record nor its "
                               "constraints; the run folder is damaged")
        gens: list[Any] = []
        sub = rows.filter(pl.Series(missing))
        times: dict[Any, str] = {}
        for _, g in sub.group_by("batch", maintain_order=True):
            X = self.codec.encode(self._knob_columns(g))
            try:
                Y = objective_matrix(g, self.objectives)
            except KeyError:
                Y = np.zeros((g.height, len(self.objectives)))
            key_cols = {k: g[k].to_numpy() for k in self.key_metric_names()
                        if k in g.columns and g[k].to_numpy().dtype.kind in "biuf"}
            ts, tc = (times.setdefault(t, iso_utc(t)) for t in (g["datetime_start"][0], g["datetime_complete"][0]))
            gens.append(_GenerationRecords(X, (g["state"] != "COMPLETE").to_numpy(), Y,
                                           g[CONSTRAINTS_COLUMN].to_numpy(), g["feasible"].to_numpy(),
                                           g["reason"].fill_null("").to_numpy().astype(object), key_cols,
                                           int(g["generation"][0]), ts, tc))
        built = iter(self._record_texts(gens))
        return [next(built) if m else h for m, h in zip(missing.tolist(), have.to_list())]

    def _records_one_by_one(self, X, states, Y, cmat, sc, key_cols, b, start, complete) -> list[str]:
        """The journal records of a generation, one JSON encoding per trial (`TrialRecords.record`): used when
        a key metric has the name of one of the records' own user attributes (`feasible`, `reason`)."""
        params = self.codec.internal_params(X)
        gen_key = "NSGAIISampler:generation"
        feasible, reasons, Yl, cl = sc["feasible"].tolist(), sc["reason"].tolist(), Y.tolist(), cmat.tolist()
        kc = {k: v.tolist() for k, v in key_cols.items()}
        blobs = []
        for i in range(len(states)):
            sys_attrs = {gen_key: b, **{f"constraints:{k}": c for k, c in zip(self.constraint_keys, cl[i])}}
            ua: dict[str, Any] = {"feasible": feasible[i]}
            if reasons[i]:
                ua["reason"] = str(reasons[i])
            if states[i] == "COMPLETE":
                ua.update({k: v[i] for k, v in kc.items()})
            blobs.append(self.records.record(params[i], states[i], Yl[i], sys_attrs, ua, start, complete))
        return blobs

    def _fitness_of(self, Y: np.ndarray, cv: np.ndarray, failed: np.ndarray,
                    finite: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """`_fitness` of a batch from its objective matrix, total violation and failed rows (the values its part
        stores), without reading the part back. `finite`: every value of Y is known to be finite (`score`'s), so that
        the bad rows are the failed ones."""
        if Y.dtype != np.float64 or Y.ndim != 2 or Y.shape[1] != len(self.maximize):
            F = to_minimization(Y, self.maximize)
        else:  # (`to_minimization`'s copy with its maximised columns negated, one column at a time)
            F = Y.copy()
            for j in self._maximized():
                F[:, j] *= -1.0
        bad = failed if finite else failed | ~np.logical_and.reduce(np.isfinite(F), axis=1)
        if bad.any():
            F[bad] = np.inf
            cv = np.where(bad, np.inf, cv)
        else:
            cv = cv.copy()  # (a new array, as np.where gives it)
        return F, cv

    def _maximized(self) -> list[int]:
        """The objectives maximised (their columns), cached."""
        got = self.__dict__.get("_max_cols")
        if got is None:
            got = self._max_cols = [j for j, f in enumerate(self.maximize) if f]
        return got

    def _fitness(self, df: pl.DataFrame, Y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(objectives to minimise, total constraint violation) of a stored batch, as the array sampler sees
        it: a failed trial is +inf in both. Read from the part (`Y`: its objective matrix, when already read),
        so that a replay sees what the run saw."""
        try:
            F = to_minimization(objective_matrix(df, self.objectives) if Y is None else Y, self.maximize)
        except KeyError:
            F = np.zeros((df.height, len(self.objectives)))
        cv = df["constraint_violation"].to_numpy().astype(float) if "constraint_violation" in df.columns \
            else np.zeros(df.height)
        bad = (df["state"] != "COMPLETE").to_numpy() | ~np.isfinite(F).all(axis=1)
        F[bad] = np.inf
        cv = np.where(bad, np.inf, cv)
        return F, cv

    def _knob_columns(self, df: pl.DataFrame) -> dict[str, Any]:
        return {k: df[k].to_numpy() if df[k].dtype != pl.List else df[k].to_list()
                for k in self.space.names if k in df.columns}

    def _replay(self, ga: Any, prior: pl.DataFrame, tracker: FrontTracker,
                mirror: OptunaMirror) -> tuple[int, list[tuple]]:
        """Resume the array sampler: feed it the stored generations in order (its state is a function of
        them) but the last `ga.lag`, which the live run had not observed yet when it bred the next generation,
        bring the Optuna mirror up to date from the parts, and return the next batch number and those last
        generations as (X, F, cv) (`_generations` observes them when the live run did)."""
        prior = prior.sort("trial")
        if prior.height and prior["trial"][-1] != prior.height - 1:
            raise DseUserError(f"{self.run_dir}/parts: trial numbers are not contiguous; the run folder is damaged")
        dists = self.space.distributions()
        stored: list[tuple] = []
        for _, batch in prior.group_by("batch", maintain_order=True):
            X = self.codec.encode(self._knob_columns(batch))
            stored.append((X, *self._fitness(batch)))
            try:
                Y = objective_matrix(batch, self.objectives)
            except KeyError:
                Y = np.zeros((batch.height, len(self.objectives)))
            tracker.add(Y, batch["feasible"].to_numpy())
        held = stored[len(stored) - ga.lag:] if ga.lag else []
        for gen in stored[: len(stored) - len(held)]:
            ga.observe(*gen)
        rows = prior.filter(pl.col("trial") >= mirror.count)
        mirror.add_rows(rows, dists, self.stored_records(rows))
        return int(prior["batch"].max()) + 1, held

    def _rebuild(self, study: optuna.Study, prior: pl.DataFrame, tracker: FrontTracker) -> int:
        """Replay stored trials (and the sampler's study attributes) into a fresh in-memory study."""
        dists = self.space.distributions()
        prior = prior.sort("trial")
        for blob in prior["_study_attrs"].drop_nulls().to_list():
            for k, v in json.loads(blob).items():
                self.storage.set_study_system_attr(self.study_id, k, v)
        if prior.height and prior["trial"][-1] != prior.height - 1:
            raise DseUserError(f"{self.run_dir}/parts: trial numbers are not contiguous; the run folder is damaged")
        study.add_trials(frozen_trials(prior, dists))  # numbered in order by the storage: 0..n-1, as stored
        for _, batch in prior.group_by("batch", maintain_order=True):  # as the live run saw them
            try:
                Y = objective_matrix(batch, self.objectives)
            except KeyError:
                Y = np.zeros((batch.height, len(self.objectives)))
            tracker.add(Y, batch["feasible"].to_numpy())
        return int(prior["batch"].max()) + 1
