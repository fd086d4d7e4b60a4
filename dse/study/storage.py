"""The Optuna mirror of a run (the run folder itself is written by `dse.runs`).

* `OptunaMirror` copies completed trials to an Optuna storage (default `journal.log` in the run folder,
  or any storage URL) once per batch; for the journal file all of a batch's records go out in one
  append + fsync (`GroupCommitBackend`) instead of one fsync per record.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterable, Iterator

import optuna
import polars as pl
from optuna.storages.journal import BaseJournalBackend, JournalFileBackend, JournalFileOpenLock, JournalStorage

from dse.runs.layout import JOURNAL, MIRROR_LOCK
from dse.runs.writer import PartStore, RunLock

__all__ = ["GroupCommitBackend", "MirrorProcess", "OptunaMirror", "RunLock", "frozen_trials", "mirror_writer_lock",
           "release_stale_lock", "repair_journal"]

log = logging.getLogger(__name__)

class GroupCommitBackend(BaseJournalBackend):
    """A journal-file backend that buffers appended records until `flush()` (one write + fsync).

    Assumes one writer per journal (the run lock guarantees it); other readers, e.g.
    optuna-dashboard, see whole batches."""

    def __init__(self, path: Path):
        release_stale_lock(path)
        repair_journal(path)
        self._file = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
        self._pending: list[dict[str, Any]] = []
        self._n_file = sum(1 for _ in self._file.read_logs(0))

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        if log_number_from < self._n_file:
            n = log_number_from
            for log in self._file.read_logs(log_number_from):
                n += 1
                yield log
            self._n_file = max(self._n_file, n)
        yield from self._pending[max(0, log_number_from - self._n_file):]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        self._pending.extend(logs)

    def flush(self) -> None:
        if self._pending:
            self._file.append_logs(self._pending)
            self._n_file += len(self._pending)
            self._pending = []


def release_stale_lock(path: Path) -> None:
    """Remove `<journal>.lock` left by a process killed during an append. Only a run holding the folder's
    RunLock opens the journal for writing, so a lock file found now has no living owner; Optuna would
    otherwise wait ~30 s before forcing it."""
    lock = Path(f"{path}.lock")
    if lock.exists():
        lock.unlink(missing_ok=True)
        log.warning("released a stale %s (left by a killed run; no process owns it)", lock)


def repair_journal(path: Path) -> None:
    """Cut a torn last record (no trailing newline) so that later appends stay readable."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        data_len = f.seek(0, os.SEEK_END)
        pos, chunk = data_len, 65536
        while pos > 0:
            start = max(0, pos - chunk)
            f.seek(start)
            buf = f.read(pos - start)
            i = buf.rfind(b"\n")
            if i >= 0:
                f.truncate(start + i + 1)
                return
            pos = start
        f.truncate(0)


class OptunaMirror:
    """Copy of the study's completed trials in an Optuna storage, appended once per batch (Optuna's public
    study API: `create_study(load_if_exists)`, `set_metric_names`, `set_user_attr`, `add_trials`), so
    optuna-dashboard shows the objectives by metric name."""

    def __init__(self, storage: str | None, run_dir: Path, study_name: str, directions: list[str],
                 metric_names: list[str] | None = None):
        self.backend: GroupCommitBackend | None = None
        self.study_name = study_name
        if storage is None:
            self.location = str(Path(run_dir) / JOURNAL)
            try:
                self._open_journal(directions)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:  # garbage inside the journal
                damaged = Path(f"{self.location}.damaged")
                os.replace(self.location, damaged)
                log.warning("%s is damaged (%s); moved to %s and rebuilt from the run's parts",
                            self.location, str(exc).splitlines()[0] if str(exc) else type(exc).__name__, damaged)
                self._open_journal(directions)
        else:
            self.location = storage
            self.storage = optuna.storages.get_storage(storage)
            self.study = optuna.create_study(storage=self.storage, study_name=study_name, directions=directions,
                                             load_if_exists=True)
        if metric_names and self.study.metric_names != list(metric_names):
            with warnings.catch_warnings():  # experimental in Optuna, stable enough for labels
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self.study.set_metric_names(list(metric_names))
        self.flush()
        self.count = len(self.study.get_trials(deepcopy=False))

    def _open_journal(self, directions: list[str]) -> None:
        self.backend = GroupCommitBackend(Path(self.location))
        self.storage: optuna.storages.BaseStorage = JournalStorage(self.backend)
        self.study = optuna.create_study(storage=self.storage, study_name=self.study_name, directions=directions,
                                         load_if_exists=True)

    def append(self, trials: list[optuna.trial.FrozenTrial]) -> None:
        """Add trials numbered ≥ the mirror's count (earlier ones are already there)."""
        new = [t for t in trials if t.number >= self.count]
        if new:
            self.study.add_trials(new)
            self.count += len(new)
        self.flush()

    def add(self, trials: list[optuna.trial.FrozenTrial]) -> None:
        """Add the next trials (created with `optuna.trial.create_trial`, numbered by the storage in order)."""
        if trials:
            self.study.add_trials(trials)
            self.count += len(trials)
        self.flush()

    def set_study_attrs(self, attrs: dict[str, Any]) -> None:
        for k, v in attrs.items():
            if self.study.user_attrs.get(k) != v:
                self.study.set_user_attr(k, v)
        self.flush()

    def flush(self) -> None:
        if self.backend is not None:
            self.backend.flush()


def frozen_trials(rows: pl.DataFrame, dists: dict[str, Any]) -> list[optuna.trial.FrozenTrial]:
    """Optuna trials of stored parts' rows (columns trial, datetime_start, datetime_complete, _optuna: the
    trial's params, values, state and attributes as the runner recorded them), in trial order."""
    out = []
    for _, ts, tc, blob in rows.sort("trial").select("trial", "datetime_start", "datetime_complete",
                                                     "_optuna").iter_rows():
        o = json.loads(blob)
        ok = o["state"] == "COMPLETE"
        t = optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE if ok else optuna.trial.TrialState.FAIL,
            values=o["values"] if ok else None, params=o["params"],
            distributions={k: dists[k] for k in o["params"]}, user_attrs=o["user_attrs"],
            system_attrs=o["system_attrs"])
        t.datetime_start, t.datetime_complete = ts, tc  # create_trial stamps "now"
        out.append(t)
    return out


MIRROR_LOCK_WAIT_S = 120.0  # an orphaned writer finishes one batch in well under a second


@contextlib.contextmanager
def mirror_writer_lock(run_dir: Path, wait_s: float = MIRROR_LOCK_WAIT_S) -> Iterator[None]:
    """Exclusive right to write the run's Optuna mirror. A mirror process left by a killed run holds it
    until its last append ends (the kernel releases it when the process dies), so a rerun never writes the
    journal at the same time as an orphan."""
    f = open(Path(run_dir) / MIRROR_LOCK, "a")
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{Path(run_dir) / MIRROR_LOCK}: another process still writes this "
                                       "run's Optuna mirror") from None
                time.sleep(0.05)
        yield
    finally:
        f.close()  # releases the lock


def mirror_main() -> None:
    """The mirror process (`python -m dse.study.storage`): a JSON line of settings on stdin, then one part index
    per line, each appended to the mirror in order (trials it already has are skipped); stops at "stop" or at
    the end of stdin, which is also what a killed parent leaves (its end of the pipe closes)."""
    cfg = json.loads(sys.stdin.readline())
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run_dir = Path(cfg["run_dir"])
    dists = {k: optuna.distributions.json_to_distribution(v) for k, v in cfg["dists"].items()}
    with mirror_writer_lock(run_dir):
        mirror = OptunaMirror(cfg["storage"], run_dir, cfg["study_name"], cfg["directions"])
        parts = PartStore(run_dir, create=False)
        for line in sys.stdin:
            if line.strip() == "stop":
                break
            rows = pl.read_parquet(parts.path(int(line)), columns=["trial", "datetime_start", "datetime_complete",
                                                                     "_optuna"])
            mirror.add(frozen_trials(rows.filter(pl.col("trial") >= mirror.count), dists))


class MirrorProcess:
    """The Optuna mirror written by a child process from the Parquet parts (the system of record) as the
    runner stores them: Optuna's per-trial bookkeeping (about 40 % of a serial run's time) then overlaps
    the next generations on another core. `close()` waits until every stored part is mirrored; a killed
    runner's child stops by itself (end of its stdin) and the next run brings the mirror up to date from
    the parts. A plain subprocess (not multiprocessing), so a user's script needs no `__main__` guard."""

    def __init__(self, storage: str | None, run_dir: Path, study_name: str, directions: list[str],
                 dists: dict[str, Any]):
        cfg = {"storage": storage, "run_dir": str(run_dir), "study_name": study_name, "directions": directions,
               "dists": {k: optuna.distributions.distribution_to_json(d) for k, d in dists.items()}}
        self.proc = subprocess.Popen([sys.executable, "-m", "dse.study.storage"], stdin=subprocess.PIPE, text=True,
                                     bufsize=1)
        self._send(json.dumps(cfg))
        self.ok: bool | None = None  # set by close()

    def _send(self, line: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:  # the child died: close() reports it; the next run catches the mirror up
            pass

    def sync(self, batch: int) -> None:
        """Mirror the part of `batch` (already written)."""
        self._send(str(batch))

    def close(self, timeout: float | None = None) -> bool:
        """Wait for the mirror to catch up (at most `timeout` s) and stop the process; False if it failed
        or had to be stopped (the next run catches the mirror up from the parts). Idempotent."""
        if self.ok is not None:
            return self.ok
        self._send("stop")
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()  # type: ignore[union-attr]
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        ok = self.ok = code == 0
        if not ok:
            log.warning("the Optuna mirror process ended with code %s; the next run of this study brings the "
                        "mirror up to date from the run's parts", code)
        return ok


if __name__ == "__main__":
    mirror_main()
