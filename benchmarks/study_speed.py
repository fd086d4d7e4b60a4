"""Trials/s and hypervolume of the dse study runner against plain Optuna (both ways) and pymoo's NSGA-II, on
the same space, model, objectives, constraints, population and budget.

Contenders (all in this process, one after the other, the model warmed up first and then every contender by one
untimed short run, their order alternating from round to round; every one evaluates a
generation of designs with one vectorized model call, and every one reuses the result of a design it asked
before, as the runner does: the same objective function for all):
  * runner          `dse.study.runner.StudyRunner` with the study's sampler (default: the array NSGA-II),
                    serial (`--serial`), writing its run folder (an Arrow part per generation) and the Optuna
                    journal mirror; repeated designs reuse their stored result (counted below). Its model runs
                    in a forked process with DSE_MODEL_PROCESS=always (or auto, when a CPU is idle; never, the
                    default: one process), which evaluates the two generations in flight with one model call while
                    the run stores the two before them (one process makes the same calls, one after the other with
                    its own work; the note says which ran): the runner then uses two CPUs, every other contender
                    one, and an idle-machine estimate is printed from the CPU seconds;
  * optuna-batched  plain Optuna, in memory: NSGAIISampler, per generation `ask` × P, `suggest_*` per knob,
                    one model call, `tell` × P (nothing written to disk);
  * optuna-journal  plain Optuna `study.optimize` with a JournalFileBackend: one design per trial and one
                    model call per trial (what a user writes first; `--skip-journal` skips it);
  * pymoo           pymoo's NSGA2 (SBX + polynomial mutation, duplicate elimination) on the knobs encoded as
                    [0, 1] reals (categorical: equal slices; log ranges: log scale; steps: rounded), constraints
                    as G <= 0; nothing written to disk. Needs `pip install -e ".[bench]"` (skipped with a
                    message if absent).
Wall and CPU seconds per contender (CPU: the process's threads and finished children, the runner's model process
included; steadier than wall time on a shared machine), the CPU seconds inside the model (`model`, in the model
process when there is one; `own` = CPU - model: the contender's own work),
and the runner's ratios in both. `--repeat N` runs N rounds (each contender once per round) and reports medians,
and at the end the trials/s ratio of each round's pair (runner and pymoo, or batched Optuna, run one after the other)
over every seed and round: median, min, max.
Hypervolume: of each contender's feasible front, all with ONE reference point: the worst feasible value of
each objective over all contenders, pushed 10 % of the range further. `--seeds 1,2,3,4,5` runs every
contender with each seed (the study's seed; pymoo's and Optuna's seed alike): one reference point per seed,
and the runner's hypervolume ratio per seed with its median and spread (one seed says little: a search's
hypervolume moves by about a percent from seed to seed).

The model's path is the same for every contender: `--kernel numpy` (the default; what `DSE_KERNEL=auto` takes in
a fresh process until it has timed ~10^7 operator elements, ~400k trials of this study) or `numba` (compiled; its
first call, ~1 s of loading, is made by the warm-up before any contender runs). Under auto the path would switch
in the middle of a long benchmark (the counter adds up over the contenders and rounds, and a background compile
starts), so that a later contender would run on another path than an earlier one.

Usage: python benchmarks/study_speed.py [--trials 10000] [--population 100] [--mix local] [--skip-journal]
                                      [--repeat 1] [--only runner,pymoo] [--seeds 1] [--kernel numpy]
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dse.expr import parse  # noqa: E402
from dse.model import kernel as model_kernel  # noqa: E402
from dse.pareto import hypervolume, nondominated_mask, to_minimization  # noqa: E402
from dse.study.execution import MODEL_PROCESS_DEFAULT  # noqa: E402
from dse.study.cache import ResultCache  # noqa: E402
from dse.study.evaluator import ModelEvaluator, normalize  # noqa: E402
from dse.study.runner import StudyRunner  # noqa: E402
from dse.study.samplers import KnobCodec, design_keys  # noqa: E402
from dse.study.spec import load_study  # noqa: E402


class Clock:
    """Wall and CPU seconds since start (CPU: this process, all its threads, and its finished children): on
    a shared machine the CPU seconds are the steadier figure."""

    def __init__(self):
        self.wall0, self.cpu0, self.children0 = time.perf_counter(), self.cpu(), self.children()

    @staticmethod
    def children() -> float:
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime

    @classmethod
    def cpu(cls) -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime + cls.children()

    def stop(self) -> dict[str, float]:
        return {"wall": time.perf_counter() - self.wall0, "cpu": self.cpu() - self.cpu0,
                "children": self.children() - self.children0}


def make_study(tmp: Path, trials: int, population: int, mix: str, seed: int = 1) -> Path:
    text = f"""
name: speed
search_space: {ROOT / 'search_spaces' / 'datacenter.yaml'}
mix: {mix}
objectives:
  - {{metric: mix.throughput, direction: maximize}}
  - {{metric: system_cost_usd, direction: minimize}}
  - {{metric: power_w, direction: minimize}}
sampler: {{kind: nsga2, population_size: {population}}}
budget: {{trials: {trials}}}
seed: {seed}
execution: {{backend: serial}}
"""
    p = tmp / f"speed-{seed}.yaml"
    p.write_text(text)
    return p


class TimedModel:
    """The model evaluator, timed: CPU seconds spent inside it (this thread), so that each contender's own
    work (breeding, bookkeeping, storage) shows beside the model's."""

    # as pure as the model it times: a run may evaluate it in a forked model process, where its counters then
    # count (the runner's ModelProcess reports that process's model CPU seconds and calls instead)
    pure = True

    def __init__(self, ev: Any):
        self.ev, self.cpu, self.calls = ev, 0.0, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.ev, name)

    def __call__(self, cols: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        t = time.thread_time()
        try:
            return self.ev(cols)
        finally:
            self.cpu += time.thread_time() - t
            self.calls += 1


class Problem:
    """The study's objective and constraints on a batch of knob columns (shared by the plain baselines), with
    the runner's result cache: a design asked again reuses its result (keyed as the runner keys it: its knob
    matrix row, `design_keys`), so every contender gets the same objective function and only the designs it
    has not seen go to the model (`designs`: those, `asked`: every design asked)."""

    def __init__(self, study: Any):
        self.space, self.spec = study.space, study.spec
        self.ev = TimedModel(ModelEvaluator(self.spec.mix))
        self.metrics = [o.metric for o in self.spec.objectives]
        self.maximize = self.spec.maximize
        self.constraints = [parse(c) for c in [*self.spec.constraints, *self.space.spec.constraints]]
        self.codec = KnobCodec(self.space)
        self.cache = ResultCache()
        self.designs = self.asked = 0

    def __call__(self, cols: dict[str, np.ndarray], X: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(objective matrix n×m in the study's units and directions, constraint matrix n×k, <= 0 feasible).
        `X`: the designs' knob matrix (`KnobCodec`), when the caller has it."""
        keys = design_keys(self.codec.encode(cols) if X is None else X)
        n = len(keys)
        at = self.cache.find(keys)
        first: dict[bytes, int] = {}
        for i in np.flatnonzero(at < 0).tolist():
            first.setdefault(keys[i], i)
        if first:
            rows = np.fromiter(first.values(), dtype=np.int64, count=len(first))
            m = normalize(self.ev({k: v[rows] for k, v in cols.items()}), len(rows))
            self.cache.add(list(first), m)
            self.designs += len(rows)
            at = self.cache.find(keys)
        self.asked += n
        m = self.cache.gather(at)
        env = {**cols, **m}
        Y = np.column_stack([np.asarray(m[k], dtype=float) for k in self.metrics])
        G = np.column_stack([np.where(m["feasible"], 0.0, 1.0)]
                            + [np.broadcast_to(c.violation(env), (len(Y),)) for c in self.constraints])
        return Y, G


class Sections:
    """CPU seconds of the runner's main thread per part of its work (exclusive: a section's time excludes
    the sections it calls), by wrapping the functions that do each part; the rest of the main thread's time is
    `other`, and the other threads' (part flush, journal append) is `threads`."""

    # (module, owner, attribute, label): what each part of a generation's work is
    PARTS = [("dse.study.samplers", "ArrayNSGAII", "ask", "breed"),
             ("dse.study.samplers", "ArrayNSGAII", "observe", "select"),
             ("dse.study.runner", "StudyRunner", "_evaluate_cached", "cache"),
             ("dse.study.runner", "StudyRunner", "_submit_cached", "cache"),
             ("dse.study.runner", "StudyRunner", "_merge_cached", "cache"),
             ("dse.study.execution", "ModelProcess", "submit", "send"),
             ("dse.study.execution", "ModelProcess", "result", "wait"),
             ("dse.study.runner", "StudyRunner", "score", "score"),
             ("dse.study.storage", "TrialRecords", "batch", "records"),
             ("dse.study.storage", "TrialRecords", "record", "records"),
             ("dse.study.runner", "StudyRunner", "frame", "frame"),
             ("dse.study.runner", "StudyRunner", "frame_data", "frame"),
             ("dse.runs.writer", "PartStore", "write", "part"),
             ("dse.runs.writer", "PartStore", "write_columns", "part"),
             ("dse.study.runner", "StudyRunner", "_journal_flush", "journal"),
             ("dse.study.runner", None, "_stored_frame", "finalize"),
             ("dse.study.storage", "OptunaMirror", "add_rows", "journal"),
             ("dse.runs.front", "FrontTracker", "add", "front"),
             ("dse.study.runner", None, "finalize", "finalize"),
             ("dse.study.runner", None, "design_keys", "keys"),
             ("dse.study.runner", "StudyRunner", "_repeats", "keys"),
             ("dse.study.runner", "StudyRunner", "_fitness_of", "select"),
             ("dse.study.runner", None, "check_study", "start"),
             ("dse.study.runner", None, "prepare_run_dir", "start"),
             ("dse.study.runner", None, "start_meta", "start"),
             ("dse.study.runner", None, "make_generation_sampler", "start"),
             ("dse.study.storage", "OptunaMirror", "__init__", "start")]

    def __init__(self):
        self.t: dict[str, float] = {}
        self.stack: list[float] = []
        self._restore: list[tuple[Any, str, Any]] = []

    def timed(self, label: str, fn: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if threading.current_thread() is not threading.main_thread():  # a writer thread's: in `threads`
                return fn(*args, **kwargs)
            t0 = time.thread_time()
            self.stack.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                took = time.thread_time() - t0
                self.t[label] = self.t.get(label, 0.0) + took - self.stack.pop()
                if self.stack:
                    self.stack[-1] += took
        return wrapper

    def __enter__(self) -> "Sections":
        import importlib

        for mod, owner, attr, label in self.PARTS:
            obj = importlib.import_module(mod)
            obj = getattr(obj, owner) if owner else obj
            if attr not in vars(obj):  # another version of the runner (e.g. main's, to compare with)
                continue
            fn = vars(obj)[attr]
            self._restore.append((obj, attr, fn))
            setattr(obj, attr, self.timed(label, fn))
        return self

    def __exit__(self, *exc: Any) -> None:
        for obj, attr, fn in reversed(self._restore):
            setattr(obj, attr, fn)


def run_runner(path: Path, tmp: Path) -> dict:
    st = load_study(path)
    model = TimedModel(ModelEvaluator.for_study(st))
    run_dir = tmp / "runs" / "speed"
    shutil.rmtree(run_dir, ignore_errors=True)
    sections = Sections()
    with sections:
        # the model as a section too, so that the sections around it exclude it
        model.__class__ = type("SectionTimedModel", (TimedModel,), {"pure": True, "__call__": sections.timed(
            "model", TimedModel.__call__)})
        clock = Clock()
        main0 = time.thread_time()
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        runner = StudyRunner(st, run_dir, serial=True, evaluator=model)
        res = runner.run()
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        main = time.thread_time() - main0
        took = clock.stop()
    # with a model process (DSE_MODEL_PROCESS=always, or auto where a CPU is idle) the model runs in a forked child: its
    # CPU seconds in the model come back with each result, and its whole CPU time counts in RUSAGE_CHILDREN
    # (Clock), once it has ended; the parent's sections then do not include the model
    mp = runner.model_process
    model_cpu, calls = (mp.cpu_s, mp.calls) if mp is not None else (model.cpu, model.calls)
    parts = {k: v for k, v in sections.t.items() if k != "model"}
    parts["other"] = main - sum(sections.t.values())
    parts["threads"] = took["cpu"] - took["children"] - main
    if mp is not None:  # the model process's own work besides the model (receiving and sending the columns, reusing
        # the results of designs it evaluated before and scoring each generation: `StudyRunner._child_work`)
        parts["child"] = took["children"] - model_cpu
    import polars as pl

    df = pl.read_parquet(tmp / "runs" / "speed" / "results.parquet")
    Y = np.column_stack([df[m].to_numpy() for m in [o.metric for o in st.spec.objectives]])
    where = "model in a forked process, in parallel with the run's own work; " if mp is not None else "one process; "
    return {**took, "Y": Y, "feasible": df["feasible"].to_numpy(), "designs": res.summary["designs_evaluated"],
            "model": model_cpu, "calls": calls,
            "note": where + f"{res.summary['cache_hits']} trials reused a repeated design's result",
            "sections": parts, "parallel": mp is not None, "main": main,
            # the run's process (not the model process): minor page faults and system CPU seconds; a forked model
            # process shares the run's pages, so that each page the run writes after the fork is copied first
            "faults": self1.ru_minflt - self0.ru_minflt, "sys": self1.ru_stime - self0.ru_stime}


def _reused(prob: Problem) -> str:
    return f"{prob.asked - prob.designs} trials reused a repeated design's result"


def run_optuna_batched(path: Path, trials: int) -> dict:
    st = load_study(path)
    prob = Problem(st)
    P = st.spec.sampler.population_size
    study = optuna.create_study(directions=[o.direction for o in st.spec.objectives],
                                sampler=optuna.samplers.NSGAIISampler(
                                    population_size=P, seed=st.spec.seed,
                                    constraints_func=lambda t: t.user_attrs["c"]))
    Ys, feas = [], []
    clock = Clock()
    done = 0
    while done < trials:
        n = min(P, trials - done)
        ts = [study.ask() for _ in range(n)]
        cols = st.space.columns([st.space.suggest(t) for t in ts])
        Y, G = prob(cols)
        for t, y, g in zip(ts, Y.tolist(), G.tolist()):
            t.set_user_attr("c", g)
            study.tell(t, y)
        Ys.append(Y)
        feas.append((G <= 0).all(axis=1))
        done += n
    return {**clock.stop(), "Y": np.vstack(Ys), "feasible": np.concatenate(feas),
            "designs": prob.designs, "model": prob.ev.cpu, "calls": prob.ev.calls, "note": "in memory, ask/tell per trial; " + _reused(prob)}


def run_optuna_journal(path: Path, tmp: Path, trials: int) -> dict:
    st = load_study(path)
    prob = Problem(st)
    Ys, feas = [], []

    def objective(trial: optuna.Trial):
        cols = st.space.columns([st.space.suggest(trial)])
        Y, G = prob(cols)
        trial.set_user_attr("c", G[0].tolist())
        Ys.append(Y[0])
        feas.append(bool((G <= 0).all()))
        return tuple(Y[0].tolist())

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp / "plain.journal")))
    study = optuna.create_study(storage=storage, directions=[o.direction for o in st.spec.objectives],
                                sampler=optuna.samplers.NSGAIISampler(
                                    population_size=st.spec.sampler.population_size, seed=st.spec.seed,
                                    constraints_func=lambda t: t.user_attrs["c"]))
    clock = Clock()
    study.optimize(objective, n_trials=trials)
    return {**clock.stop(), "Y": np.array(Ys), "feasible": np.array(feas), "designs": prob.designs,
            "model": prob.ev.cpu, "calls": prob.ev.calls, "note": "journal file, one design per trial; " + _reused(prob)}


def _decoder(space: Any):
    """[0, 1]^d → knob columns: categorical = equal slices, ranges on their (log) scale, steps rounded; inactive
    conditional knobs at their neutral value. Vectorized (the knob matrix of `KnobCodec`, then its columns),
    so that pymoo pays for its own algorithm, not for a per-row decoder."""
    codec = KnobCodec(space)

    def decode(U: np.ndarray) -> dict[str, np.ndarray]:
        X = np.empty((len(U), codec.width))
        for j, k in enumerate(codec.knobs):
            d, u = k.dist, np.clip(U[:, j], 0.0, 1.0)
            if k.kind == "categorical":
                X[:, j] = np.minimum((u * len(d.choices)).astype(int), len(d.choices) - 1)
                continue
            lo, hi = (d.low - 0.5, d.high + 0.5) if k.kind == "int" else (d.low, d.high)
            v = np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo))) if d.log else lo + u * (hi - lo)
            if d.step is not None and not d.log:
                v = d.low + np.round((v - d.low) / d.step) * d.step
            v = np.clip(v, d.low, d.high)
            X[:, j] = np.rint(v) if k.kind == "int" else v
        # every value is present, so `canonical` draws nothing: it only sets inactive knobs to their neutral value
        # (and NaN in the knob matrix, as the runner's designs)
        return codec.canonical(X, np.random.default_rng(0))

    return decode, codec.width


def run_pymoo(path: Path, trials: int) -> dict | None:
    try:
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.problem import Problem as PymooProblem
        from pymoo.optimize import minimize
    except ImportError:
        print('pymoo    : skipped (not installed; pip install -e ".[bench]" to compare with it)')
        return None
    st = load_study(path)
    prob = Problem(st)
    decode, d = _decoder(st.space)
    Ys, feas = [], []

    class P(PymooProblem):
        def __init__(self):
            super().__init__(n_var=d, n_obj=len(prob.metrics), n_ieq_constr=1 + len(prob.constraints),
                             xl=0.0, xu=1.0)

        def _evaluate(self, X, out, *args, **kwargs):
            Y, G = prob(*decode(X)[::-1])
            Ys.append(Y)
            feas.append((G <= 0).all(axis=1))
            out["F"] = to_minimization(Y, prob.maximize)
            out["G"] = G

    clock = Clock()
    minimize(P(), NSGA2(pop_size=st.spec.sampler.population_size), ("n_eval", trials), seed=st.spec.seed,
             verbose=False)
    return {**clock.stop(), "Y": np.vstack(Ys), "feasible": np.concatenate(feas),
            "designs": prob.designs, "model": prob.ev.cpu, "calls": prob.ev.calls,
            "note": "SBX + PM on [0,1] codes, duplicates (of codes) eliminated; " + _reused(prob)}


def machine_load() -> str:
    """The machine's load, to read the figures by: CPUs, load average (1 and 5 min) and, on Linux, the CPU
    pressure (share of the last 10 / 60 s in which some runnable task waited for a CPU): on a shared machine the
    wall times, and less so the CPU times, move with it."""
    text = f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} / {os.getloadavg()[1]:.1f}"
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0].split()
        p = dict(kv.split("=") for kv in some[1:])
        text += f", CPU pressure {float(p['avg10']):.0f} % / {float(p['avg60']):.0f} % (10 s / 60 s)"
    except (OSError, IndexError, KeyError, ValueError):
        pass
    return text


def _hypervolumes(out: dict[str, dict], maximize: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """The shared reference point of the contenders' results (worst feasible value of each objective over all
    of them, pushed 10 % of the range further) and each contender's hypervolume against it."""
    feas_all = np.vstack([to_minimization(r["Y"][r["feasible"]], maximize) for r in out.values()])
    lo, hi = feas_all.min(axis=0), feas_all.max(axis=0)
    ref_min = hi + 0.1 * np.maximum(hi - lo, 1e-12)
    ref = np.where(maximize, -ref_min, ref_min)
    hv = {k: hypervolume(r["Y"][r["feasible"]], ref, maximize) if r["feasible"].any() else 0.0
          for k, r in out.items()}
    return ref, hv


def use_kernel(mode: str) -> None:
    """Every contender's model on the `mode` path ("numpy" or "numba"), for the whole benchmark (see the module
    docstring: auto could switch it between contenders)."""
    os.environ[model_kernel.KERNEL_ENV] = mode
    model_kernel.reset_kernel()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--population", type=int, default=100)
    ap.add_argument("--mix", default="local")
    ap.add_argument("--skip-journal", action="store_true", help="skip plain Optuna `optimize` on a journal file")
    ap.add_argument("--repeat", type=int, default=1, help="rounds of every contender; medians are reported")
    ap.add_argument("--only", default="", help="comma-separated contenders to run (default: all), e.g. runner,pymoo")
    ap.add_argument("--seeds", default="1", help="comma-separated study seeds, e.g. 1,2,3,4,5 (hypervolume per seed)")
    ap.add_argument("--kernel", choices=("numpy", "numba"), default="numpy",
                    help="the model's path for every contender (default numpy: what a fresh process of a 10k-trial "
                         "run takes under DSE_KERNEL=auto)")
    args = ap.parse_args()
    use_kernel(args.kernel)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="dse-speed-"))
    try:
        paths = {seed: make_study(tmp, args.trials, args.population, args.mix, seed) for seed in seeds}
        st = load_study(paths[seeds[0]])
        ModelEvaluator(st.spec.mix)(st.space.columns([st.space.complete({})]))  # warm the model's caches (and kernels)
        print(f"space search_spaces/datacenter.yaml, mix {args.mix}, NSGA-II population {args.population}, "
              f"model path {model_kernel.kernel_mode()} for every contender, "
              f"{args.trials} trials, 3 objectives, seeds {seeds}; pymoo and plain Optuna: one process, one "
              "thread; the runner (serial): its model in a forked process beside its own work when a CPU is idle or when asked "
              f"(DSE_MODEL_PROCESS={os.environ.get('DSE_MODEL_PROCESS', MODEL_PROCESS_DEFAULT)}; 'auto': when a CPU "
              "is idle, 'always', 'never'; each runner row's note says which ran), its file writes on a thread; CPU s count every "
              "process and thread")
        print(f"machine at the start: {machine_load()}")
        keep = {c.strip() for c in args.only.split(",")} if args.only else None
        runs: dict[int, dict[str, list[dict]]] = {seed: {} for seed in seeds}
        def contenders(path: Path, trials: int) -> list[tuple[str, Any]]:
            fns: dict[str, Any] = {"runner": lambda: run_runner(path, tmp),
                                   "optuna-batched": lambda: run_optuna_batched(path, trials),
                                   "pymoo": lambda: run_pymoo(path, trials)}
            if not args.skip_journal:
                fns["optuna-journal"] = lambda: run_optuna_journal(path, tmp, trials)
            return [(name, fn) for name, fn in fns.items() if keep is None or name in keep]

        # every contender warmed alike before the timed rounds: one untimed short run each (3 generations of another
        # seed: its first calls, lazy imports and thread pools), as the model was warmed above
        warm = make_study(tmp, min(args.trials, 3 * args.population), args.population, args.mix, max(seeds) + 1)
        for _, fn in contenders(warm, min(args.trials, 3 * args.population)):
            fn()
        for rnd in range(args.repeat):  # rounds, each contender once per round: the machine's load hits them alike
            for seed, path in paths.items():
                order = contenders(path, args.trials)
                if rnd % 2:  # (the order alternates from round to round: neither always runs first)
                    order.reverse()
                for name, fn in order:
                    r = fn()
                    if r is not None:
                        runs[seed].setdefault(name, []).append(r)
        maximize = st.spec.maximize
        metrics = [o.metric for o in st.spec.objectives]
        ratios: dict[str, list[float]] = {}
        for seed in seeds:
            out: dict[str, dict] = {}
            for name, rs in runs[seed].items():  # median wall and CPU over the rounds; results are the same every round
                out[name] = {**rs[0], **{k: float(np.median([r[k] for r in rs])) for k in ("wall", "cpu", "model")},
                             "walls": [r["wall"] for r in rs]}
            if not out:
                return
            ref, hv = _hypervolumes(out, maximize)
            print(f"\nseed {seed}: hypervolume reference point (shared): "
                  f"{dict(zip(metrics, ref.round(4).tolist()))}")
            if args.repeat > 1:
                print(f"median of {args.repeat} rounds; wall s of each round: "
                      + "; ".join(f"{k} {', '.join(f'{w:.2f}' for w in r['walls'])}" for k, r in out.items()))
            print(f"{'contender':<15} {'trials':>7} {'wall s':>8} {'trials/s':>9} {'CPU s':>7} {'model':>6} "
                  f"{'own':>6} {'evaluated':>9} {'feasible':>8} {'front':>6} {'hypervolume':>12}  note")
            for name, r in out.items():
                Y, f = r["Y"], r["feasible"]
                # distinct points: a study that re-asks a design records it once per trial
                front = len(np.unique(Y[f][nondominated_mask(Y[f], maximize)], axis=0)) if f.any() else 0
                print(f"{name:<15} {len(Y):>7} {r['wall']:>8.2f} {len(Y) / r['wall']:>9.0f} {r['cpu']:>7.2f} "
                      f"{r['model']:>6.2f} {r['cpu'] - r['model']:>6.2f} {r['designs']:>9} "
                      f"{int(f.sum()):>8} {front:>6} {hv[name]:>12.5g}  {r['note']}")
            if "runner" in runs[seed]:
                keys = list(runs[seed]["runner"][0]["sections"])
                med = {k: float(np.median([r["sections"].get(k, 0.0) for r in runs[seed]["runner"]])) for k in keys}
                print("runner own work, CPU s (median over rounds; main thread by part, then its other threads): "
                      + ", ".join(f"{k} {v:.3f}" for k, v in med.items()) + f"; sum {sum(med.values()):.3f}")
                rr = runs[seed]["runner"]
                print(f"runner's process (median): {np.median([r['faults'] for r in rr]):.0f} minor page faults, "
                      f"{np.median([r['sys'] for r in rr]):.3f} s system CPU (included above; a forked model process "
                      "makes the run copy each shared page it writes)")
            # model work per trial: the runner evaluates only designs it has not seen (smaller calls: the model's
            # fixed cost per call weighs more per design); pymoo evaluates every trial (duplicates eliminated)
            print("model CPU per evaluated design / own CPU per trial, us: " + "; ".join(
                f"{k} {1e6 * r['model'] / max(r['designs'], 1):.0f} / {1e6 * (r['cpu'] - r['model']) / len(r['Y']):.0f}"
                for k, r in out.items()))
            # the model's fixed cost per call (a call of 100 designs costs little more than one of 10) is most of
            # its time at a generation per call: fewer, larger calls are the model's to make cheaper
            print("model calls, designs per call, CPU ms per call: " + "; ".join(
                f"{k} {r['calls']}, {r['designs'] / max(r['calls'], 1):.0f}, {1e3 * r['model'] / max(r['calls'], 1):.1f}"
                for k, r in out.items()))
            if "runner" in out and "pymoo" in out:  # the budget the 2x target leaves, split as the runner spends it
                r, pm = out["runner"], out["pymoo"]
                n = len(r["Y"])
                print(f"2x pymoo's trials/s needs the runner's wall <= {pm['wall'] / 2:.2f} s (pymoo: {pm['wall']:.2f} s); "
                      f"the runner's model calls take {r['model']:.2f} CPU s of it, its own work "
                      f"{r['cpu'] - r['model']:.2f} s")
                # in CPU terms (steadier): one process needs runner CPU <= pymoo CPU / 2, so its own work <= that
                # minus its model; two CPUs at best halve the wall of the same work, so they need runner CPU <=
                # pymoo CPU (and the model and the run's own work in parallel, each <= half of it)
                own_1 = pm["cpu"] / 2 - r["model"]
                print(f"in CPU s: one process needs the runner's own work <= {own_1:.2f} s ({1e6 * own_1 / n:.0f} us "
                      f"per trial; now {r['cpu'] - r['model']:.2f} s, {1e6 * (r['cpu'] - r['model']) / n:.0f} us); "
                      f"two idle CPUs at best need its CPU <= {pm['cpu']:.2f} s (now {r['cpu']:.2f} s)")
            if "runner" in out and "pymoo" in out and out["runner"].get("parallel"):
                # the judge is wall time on an otherwise idle 2-core machine; on a shared one, estimate it from
                # CPU seconds: the run's process (main thread and its writer/polars threads) and the model process
                # overlap during the generations but not before the first model call nor after the last result
                # (start, finalize), and two CPUs cannot do the whole CPU time in less than half of it. pymoo runs
                # on one thread: its idle wall is about its CPU time
                r, pm = out["runner"], out["pymoo"]
                med = {k: float(np.median([x["sections"].get(k, 0.0) for x in runs[seed]["runner"]]))
                       for k in ("start", "finalize", "breed", "select", "score", "cache", "keys", "send")}
                parent = float(np.median([x["cpu"] - x["children"] for x in runs[seed]["runner"]]))
                main = float(np.median([x["main"] for x in runs[seed]["runner"]]))
                child = float(np.median([x["children"] for x in runs[seed]["runner"]]))
                # the model process evaluates the two generations in flight together, and the next two are bred from
                # their results: the run's chain (score, select, breed, the design keys and the result cache, sending)
                # and the model's calls alternate, while the run's stores (parts, journal, frames, front) overlap the
                # model's calls. So the idle wall is at least the chain plus the model process's time (plus start
                # and finalize), the run's main thread's time, and half the CPU time of both processes
                chain = sum(med[k] for k in ("breed", "select", "score", "cache", "keys", "send"))
                ends = med["start"] + med["finalize"]
                est = max(main, chain + child + ends, (parent + child) / 2)
                print(f"idle 2-CPU estimate: run's process {parent:.2f} CPU s (main thread {main:.2f}, of it the chain "
                      f"{chain:.2f}), model process {child:.2f}, start + finalize {ends:.2f}: wall >= {est:.2f} s, so "
                      f"runner / pymoo <= {pm['cpu'] / est:.2f}x trials/s (pymoo's wall ~ its CPU, {pm['cpu']:.2f} s; "
                      "fsync waits and hand-over delays not counted)")
            elif "runner" in out and "pymoo" in out:
                # one process: its main thread (the model and the run's own work) is the critical path; its writer
                # and polars threads run on the other CPU of an idle machine, so the idle wall is about the main
                # thread's CPU time (plus the waits for the disk); pymoo's, about its CPU time
                main = float(np.median([x["main"] for x in runs[seed]["runner"]]))
                pm = out["pymoo"]
                print(f"idle 2-CPU estimate (one process): main thread {main:.2f} CPU s, its other threads "
                      f"{out['runner']['cpu'] - main:.2f}: wall >= {main:.2f} s, so runner / pymoo <= "
                      f"{pm['cpu'] / main:.2f}x trials/s (pymoo's wall ~ its CPU, {pm['cpu']:.2f} s; fsync waits not "
                      "counted)")
            rate = {k: len(r["Y"]) / r["wall"] for k, r in out.items()}
            cpu_rate = {k: len(r["Y"]) / max(r["cpu"], 1e-9) for k, r in out.items()}
            for other, target in (("pymoo", 2.0), ("optuna-batched", 5.0), ("optuna-journal", None)):
                if other in out and "runner" in out:
                    goal = f" (target >= {target:g}x at 10,000 trials)" if target else ""
                    ratio = hv["runner"] / hv[other] if hv[other] else math.inf
                    ratios.setdefault(other, []).append(ratio)
                    print(f"runner / {other:<14}: {rate['runner'] / rate[other]:5.2f}x trials/s{goal}, "
                          f"{cpu_rate['runner'] / cpu_rate[other]:5.2f}x trials per CPU s; hypervolume {ratio:.3f}x")
        # trials/s ratio of each round's pair (the runner and the other contender one after the other in the same
        # round, so that a change in the machine's load hits both alike), over every seed and round
        paired = {other: [len(rr["Y"]) / rr["wall"] / (len(ro["Y"]) / ro["wall"])
                          for seed in seeds for rr, ro in zip(runs[seed].get("runner", []), runs[seed].get(other, []))]
                  for other in ("pymoo", "optuna-batched") if any(other in runs[s] for s in seeds)}
        print()
        for other, rs in paired.items():
            if rs:
                print(f"trials/s runner / {other}, each round's pair over seeds {seeds} x {args.repeat} rounds: "
                      f"median {np.median(rs):.2f}x, min {min(rs):.2f}, max {max(rs):.2f}")
        if len(seeds) > 1:
            for other, rs in ratios.items():
                print(f"hypervolume runner / {other} over seeds {seeds}: median {np.median(rs):.4f}x, "
                      f"min {min(rs):.4f}, max {max(rs):.4f} ({', '.join(f'{x:.4f}' for x in rs)})")
        print(f"\nmachine at the end: {machine_load()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
