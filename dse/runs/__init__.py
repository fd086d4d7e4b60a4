"""The run-folder format in one place: layout and schemas, the writer, the one reader, objectives, the front
and the hypervolume with its stored reference point. Knows nothing of Optuna (its mirror lives in dse.study)."""

from dse.runs.front import FrontTracker, front_mask, objective_matrix
from dse.runs.layout import Objective, RunMeta, Summary
from dse.runs.reader import Run, load_run, load_runs, load_trials, run_meta
from dse.runs.writer import PartStore, RunLock, finalize

__all__ = ["FrontTracker", "Objective", "PartStore", "Run", "RunLock", "RunMeta", "Summary", "finalize",
           "front_mask", "load_run", "load_runs", "load_trials", "objective_matrix", "run_meta"]
