"""Writing a run folder: parts (atomic, one per batch: an Arrow IPC stream for a study, Parquet for a grid), run.json,
and `finalize`, which derives results.parquet, pareto.parquet and summary.json from the parts (and can always
redo it, e.g. after a killed run). Also the run lock, so a second writer on the same folder refuses instead of corrupting it.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import polars as pl

from dse.errors import DseUserError
from dse.runs import columns
from dse.runs.colpart import ColumnsError, encode_columns, read_columns, read_rows
from dse.runs.front import (REFERENCE_RULE, STUDY_RULE, feasible_of, first_batch_reference, front_hypervolume,
                            front_mask, maximize_of, objective_matrix, reference_array, reference_dict)
from dse.runs.inflight import OneInFlight, thread_pool
from dse.runs.partlog import PartLog, PartLogError, fsync_dir
from dse.runs.layout import (LOCK, PARETO, PARETO_NOMINAL, PART_FORMATS, PART_LOG, PART_RE, PARTS_DIR,
                             RESULTS, RUN_JSON, SUMMARY_JSON, TECHNOLOGY_YAML, Objective, RunMeta, Summary,
                             TechnologyRef, nominal_objectives)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a prefix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


# zstd level of the Parquet files (results, fronts, grid shards): level 1 writes a study's results.parquet in
# about half the time of polars' default level 3 at 0.4-1.5 % more bytes (measured: 2,000 trials x 147 columns
# 44 -> 14 ms, 538 -> 540 kB; 10,000 x 77: 74 -> 42 ms, 1.367 -> 1.387 MB)
PARQUET_ZSTD_LEVEL = 1


def atomic_write_parquet(df: pl.DataFrame, path: Path) -> None:
    """Parquet written atomically, with each column's unit in the file metadata (`columns.UNITS_KEY`)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    df.write_parquet(tmp, compression="zstd", compression_level=PARQUET_ZSTD_LEVEL, statistics=False,
                     metadata=columns.parquet_metadata(df.columns))
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


#: the end of an Arrow IPC stream (a continuation marker, then a zero metadata length; Arrow columnar format,
#: "IPC Streaming Format"): a stream part must end with it (and start with a continuation marker), else it was
#: cut short, e.g. by a power loss before its flush, or is not a stream at all
IPC_STREAM_START = b"\xff\xff\xff\xff"
IPC_STREAM_END = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def _write_atomically(write: Callable[[Any], None], path: Path, sync: bool) -> Callable[[], None] | None:
    """`write(f)` into a temporary file renamed to `path`: with `sync`, fsynced before the rename and the
    folder after it (returns None); else in place but not yet on disk, and the returned callable makes it
    durable (fsync of the file, then of the folder), meant for a background thread (see `PartStore`)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    f = open(tmp, "wb")
    try:
        write(f)
        f.flush()
        if sync:
            os.fsync(f.fileno())
    except BaseException:
        f.close()
        raise
    if sync:
        f.close()
        os.replace(tmp, path)
        fsync_dir(path.parent)
        return None
    os.replace(tmp, path)

    def durable() -> None:
        try:
            os.fsync(f.fileno())
        finally:
            f.close()
        fsync_dir(path.parent)

    return durable


def atomic_write_ipc(df: pl.DataFrame, path: Path, *, sync: bool = True) -> Callable[[], None] | None:
    """Arrow IPC (lz4) written atomically: a study's per-batch part (see `PART_FORMATS`), a stream for
    `.arrows`, a file for `.arrow`.

    `sync=False`: the file is in place when this returns (a killed process loses nothing of it: the kernel
    holds it) but not yet on disk; the returned callable makes it durable (fsync of the file, then of the
    folder) and is meant for a background thread (see `PartStore`)."""
    if path.suffix == ".arrows":
        return _write_atomically(lambda f: df.write_ipc_stream(f, compression="lz4"), path, sync)
    return _write_atomically(lambda f: df.write_ipc(f, compression="lz4"), path, sync)


def atomic_write_behind(data: bytes, path: Path) -> Callable[[], None]:
    """`data` written to `path` atomically, in place when this returns (a killed process loses nothing of it)
    but not yet on disk: the returned callable makes it durable (fsync of the file, then of the folder), as
    `atomic_write_ipc(sync=False)`."""
    return _write_atomically(lambda f: f.write(data), path, False)


def write_json(path: Path, obj: Any) -> None:
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    atomic_write_bytes(Path(path), (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


class PartStore:
    """A run's parts, one per batch (or grid shard): `<run>/parts/part-NNNNNN.<arrows|arrow|parquet|dcol>` files,
    each written atomically, and the array NSGA-II's generations as records of one append-only file
    (`parts/generations.dlog`, `dse.runs.partlog`).

    `fmt` is the format of the parts this store writes (`PART_FORMATS`: a study's batches are Arrow IPC streams,
    grid shards Parquet, the array NSGA-II's generations `.dcol` records appended to the log); parts of every
    format are read, so a study stored by an older version (a `.dcol` file per generation, Arrow, Parquet) resumes.

    `sync_behind`: a part is in place (renamed from its temporary file, or appended to the log) when `write`
    returns, so a killed run keeps it, and is flushed to disk (the file's and its folder's fsync, ~5 + 1.4 ms on
    this machine's ext4 disk; a log record's fdatasync, ~2 ms) by a thread while the next batch runs. The next
    `write` and `close` wait for that flush. A write with `flush=False` (parts that one model call evaluated
    together, written one right after the other: all but the last) leaves its flush to the next write's (one
    fdatasync for the log's records), so at most the parts of one model call are not yet on disk; after a power
    loss such a part may read as damaged (a file: the reader says so and how to recover, delete it and rerun) or
    torn (the log's last records: not part of the log, the next run evaluates those generations again).
    `wait` and `close` flush them too. A store without `sync_behind` flushes each part as it writes it."""

    def __init__(self, run_dir: Path, *, create: bool = True, fmt: str = "parquet", sync_behind: bool = False):
        self.dir = Path(run_dir) / PARTS_DIR
        self.suffix = PART_FORMATS[fmt]
        self.sync_behind = sync_behind and self.suffix in (".arrows", ".arrow", ".dcol")
        self._flush = OneInFlight("dse-parts")
        self._unflushed: list[Callable[[], None]] = []  # flushes of parts written with flush=False, not run yet
        self._other: dict[int, set[str]] | None = None  # each part's stored formats (see _written)
        self.log = PartLog(self.dir / PART_LOG)
        if create:
            self.dir.mkdir(parents=True, exist_ok=True)
            for stale in self.dir.glob(".*.tmp"):  # leftovers of a killed writer
                stale.unlink(missing_ok=True)

    def _files(self) -> dict[int, Path]:
        """Part index -> its file (an index stored in both formats: the one of this store's format)."""
        out: dict[int, Path] = {}
        if not self.dir.is_dir():
            return out
        for p in self.dir.iterdir():
            m = PART_RE.match(p.name)
            if m and (int(m.group(1)) not in out or p.suffix == self.suffix):
                out[int(m.group(1))] = p
        return out

    def _logged(self) -> dict[int, tuple[int, int]]:
        """Part index -> (offset, size) of its record in the log (tombstones left out: those parts are files)."""
        try:
            return {i: r for i, r in self.log.scan().items() if r[1]}
        except PartLogError as exc:
            raise DseUserError(f"{exc}: a damaged part log; cut it there (truncate -s {exc.offset} {self.log.path}) "
                               "and rerun the study to evaluate the generations after it again") from None

    def _where(self) -> dict[int, Path | None]:
        """Part index -> its file, or None for a record of the log (a log record wins over a file: the log's
        writer removes the file of each part it appends)."""
        out: dict[int, Path | None] = dict(self._files())
        out.update(dict.fromkeys(self._logged()))
        return out

    def indices(self) -> list[int]:
        return sorted(self._where())

    def paths(self) -> list[Path]:
        """The stored part files, in part order (the log's records are not files: `indices`, `read`, `rows`)."""
        return [p for _, p in sorted(self._where().items()) if p is not None]

    def path(self, index: int) -> Path:
        """The stored file of part `index` (the log, for a part it holds), else where this store writes it."""
        where = self._where()
        if index in where:
            return where[index] or self.log.path
        if self.suffix == ".dcol":
            return self.log.path
        return self.dir / f"part-{index:06d}{self.suffix}"

    def write(self, index: int, df: pl.DataFrame, *, flush: bool = True) -> None:
        """Part `index` from a frame (a `.dcol` store writes a frame that format cannot hold as an Arrow
        stream). `flush=False`: its flush to disk is left to the next write (see the class)."""
        if self.suffix == ".dcol":
            try:
                data = encode_columns({c: df[c] for c in df.columns})
            except ColumnsError:
                pass
            else:
                self._write_bytes(index, data, flush)
                return
        suffix = ".arrows" if self.suffix == ".dcol" else self.suffix
        path = self.dir / f"part-{index:06d}{suffix}"
        if self.sync_behind:
            self._flush.wait()  # the flush before it done
        if index in self._logged():  # the log's record of it superseded by the file (a tombstone, then the file)
            self.log.append(index, b"")
            self.log.sync()
        if self.sync_behind:
            self._behind(atomic_write_ipc(df, path, sync=False), flush)
        elif suffix in (".arrows", ".arrow"):
            atomic_write_ipc(df, path)
        else:
            atomic_write_parquet(columns.tidy(df), path)
        self._written(index, suffix)

    def write_columns(self, index: int, data: dict[str, Any], *, flush: bool = True) -> None:
        """Part `index` from named columns (`dse.runs.colpart.encode_columns`), as a record of the log; raises
        ColumnsError (nothing written) for a column that format cannot hold. `flush=False`: as in `write`."""
        self._write_bytes(index, encode_columns(data), flush)

    def _write_bytes(self, index: int, data: bytes, flush: bool) -> None:
        if self.sync_behind:
            self._flush.wait()  # the flush before it done
            self.log.append(index, data)
            self._behind(self.log.sync, flush)
        else:
            self.log.append(index, data)
            self.log.sync()
        self._written(index, None)

    def _behind(self, durable: Callable[[], None], flush: bool) -> None:
        """`durable` (what makes the part just written durable) run by the flushing thread, with those of the parts
        written with flush=False before it (the log's fdatasync once for all its records); with `flush=False`
        only kept for the next write's flush."""
        if durable not in self._unflushed:
            self._unflushed.append(durable)
        if flush:
            self._flush_behind()

    def _flush_behind(self) -> None:
        steps, self._unflushed = self._unflushed, []
        if len(steps) == 1:
            self._flush.submit(steps[0])
        elif steps:
            self._flush.submit(_run_all, steps)

    def _written(self, index: int, suffix: str | None) -> None:
        """After part `index` was written as `suffix` (None: to the log): its files in other formats (a re-run
        batch of an older run, a generation written as an Arrow stream) are removed."""
        if self._other is None:  # every stored part's formats, listed once
            self._other = {}
            for p in self.dir.iterdir() if self.dir.is_dir() else ():
                if m := PART_RE.match(p.name):
                    self._other.setdefault(int(m.group(1)), set()).add(p.suffix)
        for other in self._other.get(index, set()) - {suffix}:
            (self.dir / f"part-{index:06d}{other}").unlink(missing_ok=True)
        self._other[index] = {suffix} if suffix else set()

    def wait(self) -> None:
        """Wait until every part written is on disk (a flush error, e.g. EIO, is raised here)."""
        self._flush_behind()
        self._flush.wait()

    def close(self) -> None:
        """Flush the parts written to disk and stop the flushing thread (idempotent)."""
        try:
            try:
                self._flush_behind()
            finally:
                self._flush.close()
        finally:
            self.log.close()

    def read(self, index: int, columns: list[str] | None = None) -> pl.DataFrame:
        """One part (optionally only `columns`)."""
        where = self._where()
        if index in where and where[index] is None:
            return self._from_log(index, lambda b: read_columns(b, columns))
        return _checked(self.path(index), lambda p: read_part(p, columns))

    def rows(self) -> int:
        where = self._where()
        blob = self._log_bytes(where)
        return sum(self._from_log(i, read_rows, blob) if p is None else _checked(p, part_rows)
                   for i, p in where.items())

    def read_all(self) -> pl.DataFrame | None:
        where = self._where()
        if not where:
            return None
        blob = self._log_bytes(where)
        return pl.concat([self._from_log(i, read_columns, blob) if p is None else _checked(p, read_part)
                          for i, p in sorted(where.items())], how="diagonal_relaxed")

    def _log_bytes(self, where: dict[int, Path | None]) -> bytes | None:
        """The log's bytes, read once for the parts of `where` it holds (None: it holds none)."""
        return self.log.path.read_bytes() if None in where.values() else None

    def _from_log(self, index: int, how: Any, blob: bytes | None = None) -> Any:
        """`how(payload)` of part `index`'s record (`blob`: the log's bytes, when read already); a record whose
        payload does not decode is a user error that says how to recover."""
        off, n = self.log.scan()[index]
        try:
            return how(self.log.read(index) if blob is None else blob[off:off + n])
        except Exception as exc:  # noqa: BLE001 - a damaged payload (header, sizes)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            start = off - PartLog.HEAD_SIZE
            raise DseUserError(f"{self.log.path}: damaged record of part {index} at byte {start} ({first}); cut the "
                               f"log there (truncate -s {start} {self.log.path}) and rerun the study to evaluate "
                               "that generation and the ones after it again") from None


def _run_all(steps: list[Callable[[], None]]) -> None:
    for step in steps:
        step()


def _checked(path: Path, how: Any) -> Any:
    """`how(path)` of one part; a damaged part (truncated by a full disk, garbage) is a user error that says how
    to recover: that batch is evaluated again once the part is removed."""
    try:
        return how(path)
    except Exception as exc:  # noqa: BLE001 - polars raises several types for corrupt files
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DseUserError(f"{path}: damaged part ({first}); delete it and rerun the study to evaluate that "
                           "batch again") from None


def read_part(path: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """One part file: raw columns (`.dcol`), an Arrow IPC stream, an Arrow IPC file or Parquet, by its suffix. A
    `.dcol` file or a stream that does not start and end with its markers (`IPC_STREAM_END`) raises: read as it is, a cut stream gives its first
    record batches, or none, without an error."""
    if path.suffix == ".arrows":
        data = path.read_bytes()
        if not (data.startswith(IPC_STREAM_START) and data.endswith(IPC_STREAM_END)):
            raise ValueError("not a whole Arrow IPC stream (no end-of-stream marker: cut short)")
        return pl.read_ipc_stream(data, columns=columns)
    if path.suffix == ".dcol":
        return read_columns(path.read_bytes(), columns)
    if path.suffix == ".arrow":
        return pl.read_ipc(path, columns=columns)
    return pl.read_parquet(path, columns=columns)


def part_rows(path: Path) -> int:
    """Rows of one part file (a file's from its metadata; a stream's by reading its `trial` column)."""
    if path.suffix == ".dcol":
        return read_rows(path.read_bytes())
    if path.suffix == ".arrows":
        return read_part(path, ["trial"]).height
    lf = pl.scan_ipc(path) if path.suffix == ".arrow" else pl.scan_parquet(path)
    return lf.select(pl.len()).collect().item()


class RunLock:
    """Exclusive lock on a run folder (released by the OS if the process dies)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self.fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(self.fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            self.fd = None
            raise DseUserError(f"{self.path.parent}: this study is already running (pid {other}); "
                               "wait for it or use another --out folder") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def write_meta(run_dir: Path, meta: RunMeta) -> None:
    write_json(Path(run_dir) / RUN_JSON, meta)


def store_technology(run_dir: Path, source: Path | None) -> TechnologyRef | None:
    """Copy the study's technology override into the run folder (readers evaluate with the copy)."""
    if source is None:
        return None
    dst = Path(run_dir) / TECHNOLOGY_YAML
    if Path(source).resolve() != dst.resolve():
        atomic_write_bytes(dst, Path(source).read_bytes())
    return TechnologyRef(source=str(source), file=TECHNOLOGY_YAML)


def set_reference(run_dir: Path, meta: RunMeta, objs: Sequence[Objective], ref: Sequence[float]) -> None:
    """Store a reference point derived during the run in run.json (it is then fixed for the run)."""
    meta.reference_point = reference_dict(objs, ref)
    meta.reference_point_rule = REFERENCE_RULE
    write_meta(run_dir, meta)


def finalize(run_dir: Path, meta: RunMeta, *, wall_time_s: float, trials_this_run: int,
             extra: dict[str, Any] | None = None, parts: pl.DataFrame | None = None,
             before_summary: Callable[[], None] | None = None, front: np.ndarray | None = None,
             started: float | None = None) -> dict[str, Any]:
    """Write results.parquet, pareto.parquet and summary.json from the parts; returns the summary.
    `parts`: the stored parts' rows as the writer still holds them (what reading them back gives; the
    bookkeeping columns, INTERNAL_COLUMNS, may be left out: they are dropped here). `before_summary`: called
    before summary.json (the last file) is written, e.g. to wait for the run's own writes in flight, which then
    overlap the rest of finalize. `front`: each row's front flag (rows in trial order), when the writer tracked the
    front as it stored them (`FrontTracker.front_rows`: what `front_mask` gives), so that the files' writes start
    without a pass over every row (~7 ms per 10k rows). `started`: the run's start (`time.perf_counter()`): its
    wall time and trials/s are then measured when summary.json is written (the run's end, finalize included)
    rather than given (`wall_time_s`, the wall until the caller's last step)."""
    run_dir = Path(run_dir)
    df = parts if parts is not None else PartStore(run_dir).read_all()
    if df is None:
        df = pl.DataFrame({"trial": pl.Series([], dtype=pl.Int64), "feasible": pl.Series([], dtype=pl.Boolean)})
    df = columns.without_internal(df)
    if not df["trial"].is_sorted():  # (a run's rows come in trial order: sorting them again costs ~5-8 ms per 10k)
        df = df.sort("trial")
    df = columns.tidy(df)
    objs = list(meta.objectives)
    # the objectives of every row, read once (the front, the summary's front and feasible rows are rows of it; a
    # missing objective column: no front, as `_has_objectives` says)
    try:
        Y, have = (objective_matrix(df, objs), True) if objs else (None, False)
    except KeyError:
        Y, have = None, False
    if not have:
        mask = np.zeros(df.height, dtype=bool)
    elif front is not None and len(front) == df.height:
        mask = np.asarray(front, dtype=bool)
    else:
        mask = front_mask(df, objs, use_stored=False, Y=Y)
    df = df.drop("pareto", strict=False).with_columns(pl.Series("pareto", mask))
    # results.parquet (most of finalize's time: polars encodes, then the fsyncs) and the pareto files are written by
    # threads while the summary is made, and are in place before summary.json (the last file) is written. The pareto
    # files' rows are filtered first (polars' thread pool is then busy encoding the files: a filter there waited for
    # it, ~14 ms of a 10k-trial run's end), and the summary reads the rows' objectives and flags as arrays
    fronts = [(df.filter(pl.Series(mask)), run_dir / PARETO)]
    nominal = nominal_objectives(objs) if have else None  # robust objectives: the nominal front beside
    if nominal is not None and _has_objectives(df, nominal):
        fronts.append((df.filter(pl.Series(front_mask(df, nominal, use_stored=False))), run_dir / PARETO_NOMINAL))
    with thread_pool("dse-results", 2) as pool:
        writes = [pool.submit(atomic_write_parquet, df, run_dir / RESULTS)]
        writes += [pool.submit(atomic_write_parquet, rows, path) for rows, path in fronts]
        try:
            summary = _summary(run_dir, meta, df, have, objs, wall_time_s, trials_this_run, extra, Y, mask)
        finally:
            for w in writes:
                w.result()
    if before_summary is not None:
        before_summary()
    if started is not None:  # (the files above written: the run's wall as a user sees it end)
        summary.update(run_timing(time.perf_counter() - started, trials_this_run))
    write_json(run_dir / SUMMARY_JSON, summary)
    return summary


def run_timing(wall_time_s: float, trials: int) -> dict[str, Any]:
    """summary.json's wall time of a run and its trials per second (`trials` in `wall_time_s`)."""
    return {"wall_time_s": round(wall_time_s, 3),
            "trials_per_s": round(trials / wall_time_s, 2) if wall_time_s > 0 else None}


def _summary(run_dir: Path, meta: RunMeta, df: pl.DataFrame, have: bool, objs: list[Objective], wall_time_s: float,
             trials_this_run: int, extra: dict[str, Any] | None, Y: np.ndarray | None,
             front: np.ndarray) -> dict[str, Any]:
    """The summary of the run's rows `df` (`Y`: their objective matrix, None without objectives; `front`: the front
    rows' flags)."""
    feasible = np.flatnonzero(feasible_of(df))  # the feasible rows
    summary: dict[str, Any] = {
        "study": meta.name, "sampler": meta.sampler, "seed": meta.seed,
        "budget": meta.budget, "trials": df.height,
        "trials_complete": int((df["state"] == "COMPLETE").sum()) if "state" in df.columns else df.height,
        "trials_failed": int((df["state"] == "FAIL").sum()) if "state" in df.columns else 0,
        "feasible": len(feasible), "feasible_share": (len(feasible) / df.height) if df.height else 0.0,
        "front_size": int(front.sum()), "trials_this_run": trials_this_run, **run_timing(wall_time_s, trials_this_run),
        "objectives": [o.model_dump() for o in objs], "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    ref = reference_array(objs, meta.reference_point) if have else None
    if have and ref is None:
        derived = first_batch_reference(df, objs)
        if derived is not None:
            set_reference(run_dir, meta, objs, derived)
            ref = derived
    if have and len(feasible) and ref is not None:
        maximize = maximize_of(objs)
        summary["hypervolume"] = front_hypervolume(Y[front], ref, maximize)
        summary["reference_point"] = reference_dict(objs, ref)
        summary["reference_point_rule"] = meta.reference_point_rule or STUDY_RULE
        best = {}
        Yf = Y[feasible]
        for j, (o, mx) in enumerate(zip(objs, maximize)):
            col = np.where(np.isfinite(Yf[:, j]), Yf[:, j], -np.inf if mx else np.inf)
            i = int(np.argmax(col) if mx else np.argmin(col))
            row = df.row(int(feasible[i]), named=True)
            best[o.metric] = {"trial": row["trial"], "value": float(Yf[i, j]),
                              "design": {k: row[k] for k in meta.knobs if k in row},
                              "objectives": {oo.metric: float(Yf[i, jj]) for jj, oo in enumerate(objs)}}
        summary["best"] = best
    else:
        summary["hypervolume"] = 0.0
        summary["reference_point"] = None
        summary["best"] = {}
    if extra:
        summary.update(extra)
    return Summary.model_validate(summary).model_dump(mode="json")


def _has_objectives(df: pl.DataFrame, objs: Sequence[Objective]) -> bool:
    try:
        objective_matrix(df.head(0) if df.height == 0 else df.head(1), objs)
    except KeyError:
        return False
    return True


def copy_study_file(src: Path, dst: Path) -> None:
    shutil.copyfile(src, dst)
