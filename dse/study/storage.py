"""The Optuna mirror of a run (the run folder itself is written by `dse.runs`).

* `OptunaMirror` copies completed trials to an Optuna storage (default `journal.log` in the run folder,
  or any storage URL). Each trial becomes the journal's create-trial record (`TrialRecords`, what
  `Study.add_trial` writes), built column-wise for many trials at once, so the journal file gets trials as
  lines (`journal_lines`, `add_records`) in one append, built and written by a writer thread, with no per-trial Optuna
  bookkeeping (flushed to disk when the mirror closes: the parts are the system of record, a resumed run
  brings the journal up to date); another storage gets the trials through `Study.add_trials`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import optuna
import polars as pl
from optuna.storages.journal import BaseJournalBackend, JournalFileBackend, JournalFileOpenLock, JournalStorage

from dse.runs.inflight import OneInFlight
from dse.runs.layout import JOURNAL, MIRROR_LOCK
from dse.runs.writer import PartStore, RunLock

__all__ = ["GroupCommitBackend", "MirrorProcess", "OptunaMirror", "RunLock", "frozen_trials", "iso_utc",
           "journal_lines", "mirror_writer_lock", "release_stale_lock", "repair_journal", "set_outcome", "TrialRecords"]

log = logging.getLogger(__name__)

class GroupCommitBackend(BaseJournalBackend):
    """A journal-file backend that buffers appended records until `flush()` (one write + fsync).

    Assumes one writer per journal (the run lock guarantees it); other readers, e.g.
    optuna-dashboard, see whole batches."""

    def __init__(self, path: Path):
        release_stale_lock(path)
        repair_journal(path)
        self._path = path
        self._lock = JournalFileOpenLock(str(path))
        self._file = JournalFileBackend(str(path), lock_obj=self._lock)
        self._pending: list[dict[str, Any]] = []
        self._n_file = sum(1 for _ in self._file.read_logs(0))
        self._unsynced = False  # lines appended by append_lines and not yet flushed to disk (see sync)

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

    def append_lines(self, lines: list[str] | list[bytes], *, sync: bool = False, count: int | None = None) -> None:
        """Append records already serialized as JSON (one per line; or `bytes`: such lines, UTF-8, each ended by
        a newline: `count` of them, else one per item) in one write (bytes: written by `os.writev`, 1,024 at a
        time, not joined first), after anything pending, under the journal's own lock, as
        `JournalFileBackend.append_logs` writes them. Flushed to disk here only with `sync` (fdatasync after the
        write; else at `sync()`): the journal is a mirror of the parts, which a resumed run brings up to date (a
        power loss can only cut the journal's tail: `repair_journal`), but its lines written over a run are best
        synced as they come, by the writer thread that appends them, so that the run's end does not wait for all
        of them (`OptunaMirror.add_records`)."""
        self.flush()
        if not lines:
            return
        self._lock.acquire()
        try:
            with open(self._path, "ab") as f:
                if isinstance(lines[0], bytes):
                    _write_pieces(f.fileno(), lines)
                else:
                    f.write(("\n".join(lines) + "\n").encode("utf-8"))
                if sync:
                    f.flush()
                    os.fdatasync(f.fileno())
        finally:
            self._lock.release()
        self._n_file += len(lines) if count is None else count
        self._unsynced = self._unsynced or not sync

    def sync(self) -> None:
        """Flush the lines appended by `append_lines` to disk (fsync)."""
        if self._unsynced:
            with open(self._path, "rb") as f:
                os.fsync(f.fileno())
            self._unsynced = False


_IOV_MAX = 1024  # buffers per writev (Linux's IOV_MAX)


def _write_pieces(fd: int, pieces: list[bytes]) -> None:
    """Write `pieces` in order to `fd` (a file opened for appending), by `os.writev` (no joined copy)."""
    for i in range(0, len(pieces), _IOV_MAX):
        chunk = pieces[i:i + _IOV_MAX]
        done, total = os.writev(fd, chunk), sum(map(len, chunk))
        if done < total:  # (a regular file takes it all at once but on a full disk)
            rest = b"".join(chunk)
            while done < total:
                done += os.write(fd, rest[done:])


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
        self._journal_head: tuple[int, str] | None = None  # (study id, worker id) of the lines add_rows writes
        # the journal lines of a batch are appended by a thread while the next batch runs, and flushed to disk at
        # close: the mirror is not the system of record (a run resumes from the parts and brings it up to date)
        self._append = OneInFlight("dse-journal")
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
        self.wait()
        new = [t for t in trials if t.number >= self.count]
        if new:
            self.study.add_trials(new)
            self.count += len(new)
        self.flush()

    def add(self, trials: list[optuna.trial.FrozenTrial]) -> None:
        """Add the next trials (created with `optuna.trial.create_trial`, numbered by the storage in order)."""
        self.wait()
        if trials:
            self.study.add_trials(trials)
            self.count += len(trials)
        self.flush()

    def add_rows(self, rows: pl.DataFrame, dists: dict[str, Any], records: list[str] | None = None) -> None:
        """Add the stored trials `rows` (parts' rows numbered from the mirror's count on, see `frozen_trials`).
        The run's journal file gets their create-trial records appended as lines (one write, no
        per-trial replay of the journal); another storage gets them through `Study.add_trials`. `records`:
        the rows' `_optuna` column as the caller holds it (`TrialRecords` bodies, in trial order)."""
        if rows.height == 0:
            return
        if self.backend is None:
            if records is not None and ("_optuna" not in rows.columns or rows["_optuna"].null_count()):
                rows = rows.sort("trial").with_columns(pl.Series("_optuna", records, dtype=pl.String))
            self.add(frozen_trials(rows, dists))
            return
        if self._journal_head is None:
            self._journal_head = (self.storage.get_study_id_from_name(self.study_name), f"{uuid.uuid4()}-dse")
        lines = journal_lines(rows, *self._journal_head, dists, records=records)
        self._append.submit(self.backend.append_lines, lines)  # one append in flight at a time, in order
        self.count += rows.height

    def add_records(self, records: list[str] | Callable[[str], list[str] | list[bytes]],
                    count: int | None = None) -> None:
        """Append the next trials' create-trial records (`TrialRecords` bodies, in trial order) to the run's
        journal file as lines (one write, by the writer thread). `records` may be a callable that builds them
        (`count` records), called by the writer thread with the lines' head (`_journal_head`): the run goes on
        with its next generations meanwhile. It returns the records, or their journal lines as bytes (`head +
        record[1:]`, each ended by a newline: `TrialRecords.batch(head=...)`, no Python text per trial)."""
        n = len(records) if count is None else count
        if not n:
            return
        assert self.backend is not None, "add_records writes the run's own journal file"
        if self._journal_head is None:
            self._journal_head = (self.storage.get_study_id_from_name(self.study_name), f"{uuid.uuid4()}-dse")
        head = _journal_head(*self._journal_head)
        backend = self.backend

        def append() -> None:
            built = records(head) if callable(records) else records
            # synced as appended (off the run's path): the journal's lines of a 10,000-trial run (~18 MB) synced at
            # once at its end took 19-32 ms there, ten syncs of their tenths 0.1 ms at the end
            if built and isinstance(built[0], bytes):
                backend.append_lines(built, sync=True, count=n)
            else:
                backend.append_lines([head + b[1:] for b in built], sync=True)
        self._append.submit(append)
        self.count += n

    def wait(self) -> None:
        """Wait for the journal append in flight (its write error, e.g. a full disk, is raised here)."""
        self._append.wait()

    def close(self) -> None:
        """Finish the appends in flight, stop the writer thread and flush the journal to disk (idempotent)."""
        self._append.close()
        if self.backend is not None:
            self.backend.sync()

    def set_study_attrs(self, attrs: dict[str, Any]) -> None:
        self.wait()
        for k, v in attrs.items():
            if self.study.user_attrs.get(k) != v:
                self.study.set_user_attr(k, v)
        self.flush()

    def flush(self) -> None:
        self.wait()
        if self.backend is not None:
            self.backend.flush()


# the journal file's operation code for "create a trial" (Optuna's JournalOperation.CREATE_TRIAL, an on-disk
# format every Optuna release reads; tests/test_study_mirror.py checks it and the records against Optuna's own)
JOURNAL_CREATE_TRIAL = 4
_STATE = {"COMPLETE": optuna.trial.TrialState.COMPLETE, "FAIL": optuna.trial.TrialState.FAIL}


def iso_utc(t: dt.datetime) -> str:
    """A trial time as the journal stores it (a naive time is local, as `datetime.now()` gives it)."""
    return t.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


# json.dumps(..., separators=(",", ":")) builds an encoder per call (~6 us of a record's ~28 us); one is kept
_COMPACT = json.JSONEncoder(separators=(",", ":"))


class TrialRecords:
    """Finished trials as JSON bodies of the journal's create-trial record (what `Study.add_trial` writes).

    Stored in the parts (`_optuna`), a record is both the system of record of the trial and, prefixed by
    `journal_lines`, its line in the run's journal."""

    def __init__(self, dists: dict[str, Any]):
        self.dist_json = {k: optuna.distributions.distribution_to_json(d) for k, d in dists.items()}
        self._text: dict[tuple[str, ...], str] = {}  # knob names -> their distributions as JSON object text
        self._exprs: dict[tuple, pl.Expr] = {}  # see `_expression`

    def _distributions(self, names: tuple[str, ...]) -> str:
        text = self._text.get(names)
        if text is None:  # a study has few sets of active knobs: each is encoded once
            text = self._text[names] = json.dumps({k: self.dist_json[k] for k in names}, separators=(",", ":"))
        return text

    def record(self, params: dict[str, Any], state: str, values: list[float] | None, system_attrs: dict[str, Any],
               user_attrs: dict[str, Any], start: str, complete: str) -> str:
        """`params` in Optuna's internal representation (a categorical's choice index, a number as float),
        state COMPLETE or FAIL, `start`/`complete` from `iso_utc`."""
        ok = state == "COMPLETE"
        one = ok and values is not None and len(values) == 1
        text = _COMPACT.encode({"datetime_start": start, "state": int(_STATE[state]), "value": values[0] if one else None,
                           "values": values if ok and not one else None, "datetime_complete": complete,
                           "params": params, "user_attrs": user_attrs, "system_attrs": system_attrs,
                           "intermediate_values": {}})
        return f'{text[:-1]},"distributions":{self._distributions(tuple(params))}}}'

    def batch(self, knobs: list[tuple[str, str, np.ndarray]], failed: np.ndarray, values: np.ndarray,
              system_attrs: list[tuple[str, Any]], feasible: np.ndarray, reasons: np.ndarray,
              key_metrics: list[tuple[str, np.ndarray]], start: Any, complete: Any, *,
              head: str | None = None) -> list[str] | list[bytes]:
        """The records of a batch at once, text for text what `record` writes for each trial, built column-wise
        by one polars string expression (no per-trial Python work: ~0.2 us per record at 10,000 rows, so a run
        builds its journal in bulk, see `dse.study.runner`).

        `knobs`: (name, kind, values) in parameter order, kind 'categorical' (values: choice index), 'int' or
        'float'; NaN = the knob is inactive (left out). `failed`: FAIL rows (no values, no key metrics);
        `values`: the objective matrix (n x m); `system_attrs`: (key, column or one number) in order; user
        attributes: `feasible`, then `reason` where not empty, then `key_metrics` (name, column) on the rows
        that did not fail (`reasons`: one text per row, or (texts, index of each row's text)); `start`/`complete`: one
        `iso_utc` text, one per row, or (texts, index of each row's text). A key metric named
        `feasible` or `reason` is not supported here (use `record`).

        `head` (a journal line's start, `_journal_head`): the records' journal lines instead, each as the bytes the
        journal gets (`head + record[1:]`, ended by a newline), polars' binary values: no Python text per record (a
        writer thread building 1,000 lines as Python texts held the interpreter lock ~7 ms, against the run's main
        thread)."""
        n = len(failed)
        if n == 0:
            return []
        enc = _COMPACT.encode
        ok = ~np.asarray(failed, dtype=bool)
        m, k = values.shape[1], len(knobs)
        raw: dict[str, np.ndarray] = {}  # the numeric columns, made Series at once (`_numeric_series`)
        active = np.empty((n, k), dtype=bool)
        for j, (_, kind, x) in enumerate(knobs):
            x = np.asarray(x, dtype=float)
            active[:, j] = x == x
            v = np.where(active[:, j], x, 0.0)
            raw[f"p{j}"] = v.astype(np.int64) if kind == "categorical" else np.round(v) if kind == "int" else v
            raw[f"a{j}"] = active[:, j]
        for j in range(m):
            raw[f"v{j}"] = values[:, j]
        for j, (_, c) in enumerate(system_attrs):
            raw[f"s{j}"] = np.broadcast_to(np.asarray(c), (n,))
        for j, (_, c) in enumerate(key_metrics):
            raw[f"k{j}"] = np.asarray(c)
        cols: dict[str, pl.Series] = _numeric_series(raw)
        # reasons, times and the distributions' text: few distinct values, each encoded once
        cols["reason"] = _distinct_texts(reasons if isinstance(reasons, tuple) else np.asarray(reasons, dtype=object),
                                         n, lambda r: enc(r) if r != "" else None)
        cols["start"] = _distinct_texts(start, n, enc)
        cols["complete"] = _distinct_texts(complete, n, enc)
        names = [knob[0] for knob in knobs]
        if k <= 62:
            code = active.astype(np.int64) @ (1 << np.arange(k, dtype=np.int64))
            codes, which = np.unique(code, return_inverse=True)
            patterns = [[bool(c >> j & 1) for j in range(k)] for c in codes.tolist()]
        else:
            pats, which = np.unique(active, axis=0, return_inverse=True)
            patterns = pats.tolist()
        tails = [self._distributions(tuple(nm for nm, on in zip(names, p) if on)) + "}" for p in patterns]
        cols["tail"] = _pick(tails, which)
        cols["ok"] = pl.Series(ok)
        cols["feasible"] = pl.Series(np.asarray(feasible, dtype=bool))
        # the number columns held as numbers (not texts) are written as text by the expression, in one query
        casts = tuple(c for c, v in cols.items() if c[0] in "pvsk" and v.dtype.is_numeric())
        expr = self._expression(tuple(names), m, tuple(enc(nm) for nm, _ in system_attrs),
                                tuple(enc(nm) for nm, _ in key_metrics),
                                tuple(cols[c].dtype == pl.Boolean for c in cols if c[0] in "sk"),
                                "{" if head is None else head, casts, "" if head is None else "\n")
        if head is None:
            return pl.DataFrame(cols).select(expr)["r"].to_list()
        # (as bytes straight from polars: a Python text of the ~1.8 MB a 1,000-trial append holds, then its UTF-8
        # copy, took ~2-3 ms more, holding the interpreter lock; each line's newline is the record expression's last
        # piece. The lines are not joined but written by writev (`GroupCommitBackend.append_lines`): joined by polars,
        # cast to binary and made one Python bytes, three copies of a 10k-trial run's ~18 MB in fresh memory, they
        # took ~19 % more CPU, built and written: 41.2 against 34.6 ms per 10k lines)
        return pl.DataFrame(cols).select(expr.cast(pl.Binary))["r"].to_list()

    def _expression(self, names: tuple[str, ...], m: int, sys_names: tuple[str, ...],
                    key_names: tuple[str, ...], flags: tuple[bool, ...], opening: str = "{",
                    casts: tuple[str, ...] = (), closing: str = "") -> pl.Expr:
        """The polars expression of `batch`'s records over its columns (cached per set of fields; `flags`: which
        system attribute and key metric columns, in order, are booleans rather than texts; `opening`: the text
        before the first field, a record's `{` or a journal line's head; `casts`: the columns held as numbers,
        written as polars' text of them; `closing`: the text after the record, a journal line's newline)."""
        key = (names, m, sys_names, key_names, flags, opening, casts, closing)
        hit = self._exprs.get(key)
        if hit is not None:
            return hit
        if len(self._exprs) >= 256:  # (a few sets of fields per run)
            self._exprs.clear()
        cast = set(casts)
        lit, cat = pl.lit, pl.concat_str
        enc = _COMPACT.encode
        is_bool = dict(zip([f"s{j}" for j in range(len(sys_names))] + [f"k{j}" for j in range(len(key_names))],
                           flags))

        def col(name: str) -> pl.Expr:
            if is_bool.get(name):
                return pl.when(pl.col(name)).then(lit("true")).otherwise(lit("false"))
            return pl.col(name).cast(pl.String) if name in cast else pl.col(name)
        if m == 1:
            vals = pl.when(col("ok")).then(cat([lit('"value":'), col("v0"), lit(',"values":null')]))
        else:
            vals = pl.when(col("ok")).then(cat([lit('"value":null,"values":['),
                                                cat([col(f"v{j}") for j in range(m)], separator=","), lit("]")]))
        vals = vals.otherwise(lit('"value":null,"values":null'))
        state = pl.when(col("ok")).then(lit(str(int(optuna.trial.TrialState.COMPLETE)))).otherwise(
            lit(str(int(optuna.trial.TrialState.FAIL))))
        params = cat([pl.when(pl.col(f"a{j}")).then(cat([lit(enc(nm) + ":"), col(f"p{j}")]))
                      for j, nm in enumerate(names)], separator=",", ignore_nulls=True) if names else lit("")
        ua = [lit('"feasible":'), pl.when(col("feasible")).then(lit("true")).otherwise(lit("false")),
              cat([lit(',"reason":'), col("reason")])]
        if key_names:
            ua.append(pl.when(col("ok")).then(cat([cat([lit("," + nm + ":"), col(f"k{j}")])
                                                   for j, nm in enumerate(key_names)])))
        sa = cat([cat([lit(nm + ":"), col(f"s{j}")]) for j, nm in enumerate(sys_names)], separator=",") \
            if sys_names else lit("")
        hit = self._exprs[key] = cat([
            lit(opening + '"datetime_start":'), col("start"), lit(',"state":'), state, lit(","), vals,
            lit(',"datetime_complete":'), col("complete"), lit(',"params":{'), params,
            lit('},"user_attrs":{'), cat(ua, ignore_nulls=True), lit('},"system_attrs":{'), sa,
            lit('},"intermediate_values":{},"distributions":'), col("tail"), *([lit(closing)] if closing else [])]
        ).alias("r")
        return hit


def _numeric_series(raw: dict[str, np.ndarray]) -> dict[str, pl.Series]:
    """`TrialRecords.batch`'s numeric columns (of one length) as Series, in order: booleans as they are (its
    expression writes them), integers as int64 numbers (written as `str` does), floats as numbers, which its
    expression writes as polars' text (Python's json text of every finite number from 1e-4 on, see
    `json_number_series`) in the one query that writes the records, except a column that holds a tiny number, NaN
    or an infinity: `json_number_series`'s texts. The columns of each kind are one Series, sliced per column, and
    the floats are checked in one pass (a Series and a check per column cost ~20-40 us each, ~0.6 ms of a 1,000-row
    batch's ~1.7 ms of Python holding the interpreter lock)."""
    if not _FAST_TEXT:
        _FAST_TEXT.append(_polars_matches_repr())
    n = len(next(iter(raw.values()))) if raw else 0
    kinds: dict[Any, list[str]] = {}
    for name, a in raw.items():
        kinds.setdefault(bool if a.dtype.kind == "b" else np.int64 if a.dtype.kind in "iu" else float, []).append(name)
    out: dict[str, pl.Series] = {}
    for dtype, names in kinds.items():
        block = np.empty((len(names), n), dtype=dtype)
        for i, name in enumerate(names):
            block[i] = raw[name]
        flat = pl.Series(block.ravel())
        text = np.zeros(len(names), dtype=bool)  # float columns written as json_number_series' texts
        if dtype is float:
            text = _odd_mask(block).any(axis=1) | (not _FAST_TEXT[0])
        for i, name in enumerate(names):
            out[name] = json_number_series(block[i]) if text[i] else flat.slice(i * n, n)
    return {name: out[name] for name in raw}


def _odd_mask(a: np.ndarray) -> np.ndarray:
    """Where `a` holds a number polars writes otherwise than Python's json: a tiny one (not 0), NaN, an infinity."""
    with np.errstate(invalid="ignore"):
        return ~((np.abs(a) >= _POLARS_TEXT_FROM) & np.isfinite(a)) & (a != 0)


def _odd_numbers(a: np.ndarray) -> np.ndarray:
    """Positions of the numbers polars writes otherwise than Python's json (`_odd_mask`)."""
    return np.flatnonzero(_odd_mask(a))


def _distinct_texts(a: Any, n: int, text: Callable[[str], str | None]) -> pl.Series:
    """`text` of each of the `n` strings of `a` (one string: for every row; (strings, index of each row's
    string); or one string per row), computed once per distinct string (None: a null)."""
    if isinstance(a, str):
        return pl.Series([text(a)] * n, dtype=pl.String)
    if isinstance(a, tuple):
        return _pick([text(x) for x in a[0]], a[1])
    index: dict[str, int] = {}
    which = np.fromiter((index.setdefault(x, len(index)) for x in np.asarray(a, dtype=object).tolist()),
                        dtype=np.int64, count=n)
    return _pick([text(str(x)) for x in index], which)


def _pick(texts: list[str | None], which: np.ndarray) -> pl.Series:
    """The String Series of `texts[i]` for each i of `which`: the few distinct texts as a Series, gathered by polars
    (was: a Python list of each row's text, which polars then read text by text holding the interpreter lock; a
    journal's distributions column of 1,000 rows of ~900 characters, against the run's main thread)."""
    return pl.Series(texts, dtype=pl.String)[np.asarray(which, dtype=np.int64).ravel()]


# numbers below this magnitude are written by Python's repr (polars writes 1e-5..1e-4 without an exponent and
# pads exponents differently); every other finite number gets polars' shortest round-trip text, which is repr's
_POLARS_TEXT_FROM = 1e-4
_JSON_CONSTANTS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _polars_matches_repr() -> bool:
    """Whether this polars writes finite floats of magnitude >= 1e-4 (and 0) as Python's repr does."""
    probe = np.array([0.0, -0.0, 1.0, 0.1, 1 / 3, 1e-4, 1.5e-4, 123.456, 1e15, 1e16, 1.2345678901234567e16,
                      2.0 ** 70, 1e22, 1e300, 1.7976931348623157e308, -2.5, 81862.25790591986, 1.9000000000000001])
    return pl.Series(probe).cast(pl.String).to_list() == list(map(float.__repr__, probe.tolist()))


_FAST_TEXT: list[bool] = []


def json_number_texts(a: np.ndarray) -> list[str]:
    """Each float as the text Python's json writes for it (its repr; NaN, Infinity, -Infinity), converted in one
    vectorized pass by polars where that gives the same text (repr costs ~1 us per float, most of a journal
    record's cost), else by repr."""
    a = np.asarray(a, dtype=float)
    if not _FAST_TEXT:
        _FAST_TEXT.append(_polars_matches_repr())
    if not _FAST_TEXT[0] or len(a) < 16:
        out = list(map(float.__repr__, a.tolist()))
    else:
        out = pl.Series(a).cast(pl.String).to_list()
        with np.errstate(invalid="ignore"):
            odd = np.flatnonzero(~(np.abs(a) >= _POLARS_TEXT_FROM) & (a != 0))  # tiny numbers and NaN
        for i in odd.tolist():
            out[i] = float.__repr__(float(a[i]))
    bad = np.flatnonzero(~np.isfinite(a))
    for i in bad.tolist():
        out[i] = _JSON_CONSTANTS[float.__repr__(float(a[i]))]
    return out


def _float_json(x: float) -> str:
    r = float.__repr__(x)
    return _JSON_CONSTANTS.get(r, r)


def json_number_series(a: np.ndarray) -> pl.Series:
    """`json_number_texts` as a polars String Series (not turned into Python strings): polars' text of each
    number, with the numbers it writes otherwise than Python's json (tiny ones, NaN, infinities) replaced."""
    a = np.asarray(a, dtype=float)
    if not _FAST_TEXT:
        _FAST_TEXT.append(_polars_matches_repr())
    if not _FAST_TEXT[0]:
        return pl.Series(list(map(_float_json, a.tolist())), dtype=pl.String)
    out = pl.Series(a).cast(pl.String)
    odd = _odd_numbers(a)  # tiny, NaN, inf
    if odd.size:
        out = out.scatter(odd, [_float_json(x) for x in a[odd].tolist()])
    return out


def set_outcome(o: dict[str, Any], state: str, values: list[float] | None) -> None:
    """Set state and objective values of a stored `_optuna` record (either format, see `frozen_trials`)."""
    ok = state == "COMPLETE"
    if "distributions" not in o:
        o["state"], o["values"] = state, values if ok else None
        return
    one = ok and values is not None and len(values) == 1
    o["state"] = int(_STATE[state])
    o["value"], o["values"] = (values[0] if one else None), (values if ok and not one else None)


def _is_record(blob: str) -> bool:
    return blob.startswith('{"datetime_start"')


def frozen_trials(rows: pl.DataFrame, dists: dict[str, Any]) -> list[optuna.trial.FrozenTrial]:
    """Optuna trials of stored parts' rows (columns trial, datetime_start, datetime_complete, _optuna), in trial
    order. `_optuna` is a journal record body (`TrialRecords`) or, in parts written by the ask/tell loop and by
    earlier versions, {params (external values), values, state (name), system_attrs, user_attrs}."""
    out = []
    parsed: dict[str, Any] = {}
    for _, ts, tc, blob in rows.sort("trial").select("trial", "datetime_start", "datetime_complete",
                                                     "_optuna").iter_rows():
        o = json.loads(blob)
        if "distributions" in o:
            ds = {}
            for k, v in o["distributions"].items():
                d = parsed.get(v)
                if d is None:
                    d = parsed[v] = optuna.distributions.json_to_distribution(v)
                ds[k] = d
            state = optuna.trial.TrialState(o["state"])
            values = o["values"] if o["values"] is not None else (
                [o["value"]] if o["value"] is not None else None)
            params = {k: ds[k].to_external_repr(p) for k, p in o["params"].items()}
        else:
            state, values, params = _STATE[o["state"]], o["values"], o["params"]
            ds = {k: dists[k] for k in params}
        ok = state == optuna.trial.TrialState.COMPLETE
        t = optuna.trial.create_trial(state=state, values=values if ok else None, params=params, distributions=ds,
                                      user_attrs=o["user_attrs"], system_attrs=o["system_attrs"])
        t.datetime_start, t.datetime_complete = ts, tc  # create_trial stamps "now"
        out.append(t)
    return out


def _journal_head(study_id: int, worker_id: str) -> str:
    """The start of a create-trial journal line, up to the record's first field."""
    return json.dumps({"op_code": JOURNAL_CREATE_TRIAL, "worker_id": worker_id, "study_id": study_id},
                      separators=(",", ":"))[:-1] + ","


def journal_lines(rows: pl.DataFrame, study_id: int, worker_id: str, dists: dict[str, Any],
                  records: list[str] | None = None) -> list[str]:
    """The journal's create-trial lines of stored parts' rows, in trial order: a `TrialRecords` body gets its
    header (no parsing); a record of the other format goes through `frozen_trials`. `records`: the rows'
    `_optuna` bodies in trial order, when the caller holds them (not read back from `rows`)."""
    head = _journal_head(study_id, worker_id)
    if records is not None and len(records) == rows.height and all(map(_is_record, records)):
        return [head + b[1:] for b in records]
    trial = rows["trial"].to_numpy()
    if (np.diff(trial) < 0).any():
        rows = rows.sort("trial")
    blobs = rows["_optuna"].to_list()
    if all(_is_record(b) for b in blobs):
        return [head + b[1:] for b in blobs]
    out = []
    for t, b in zip(frozen_trials(rows, dists), blobs):
        if not _is_record(b):
            internal = {k: t.distributions[k].to_internal_repr(v) for k, v in t.params.items()}
            b = TrialRecords(t.distributions).record(internal, t.state.name, t.values, t.system_attrs,
                                                     t.user_attrs, iso_utc(t.datetime_start),
                                                     iso_utc(t.datetime_complete))
        out.append(head + b[1:])
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
            rows = parts.read(int(line), columns=["trial", "datetime_start", "datetime_complete", "_optuna"])
            mirror.add_rows(rows.filter(pl.col("trial") >= mirror.count), dists)
        mirror.close()


class MirrorProcess:
    """The Optuna mirror written by a child process from the parts (the system of record) as the
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
