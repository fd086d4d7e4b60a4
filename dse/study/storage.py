"""Run-folder persistence: append-only Parquet parts (the system of record), the Optuna mirror, a run lock.

* `PartStore` writes one Parquet file per batch atomically (temp file, fsync, rename): a crash loses at
  most the batch in flight and never leaves a half-written part.
* `OptunaMirror` copies completed trials to an Optuna storage (default `journal.log` in the run folder,
  or any storage URL) once per batch; for the journal file all of a batch's records go out in one
  append + fsync (`GroupCommitBackend`) instead of one fsync per record.
* `RunLock` makes a second `dse run` on the same folder refuse instead of corrupting it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable

import optuna
import polars as pl
from optuna.storages.journal import BaseJournalBackend, JournalFileBackend, JournalFileOpenLock, JournalStorage

from dse.errors import DseUserError

PART_RE = re.compile(r"^part-(\d{6,})\.parquet$")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one, never a prefix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def atomic_write_parquet(df: pl.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    df.write_parquet(tmp, compression="zstd", statistics=False)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class PartStore:
    """`<run>/parts/part-NNNNNN.parquet`, one per batch (or grid shard), written atomically."""

    def __init__(self, run_dir: Path):
        self.dir = Path(run_dir) / "parts"
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob(".*.tmp"):  # leftovers of a killed writer
            stale.unlink(missing_ok=True)

    def indices(self) -> list[int]:
        return sorted(int(m.group(1)) for p in self.dir.iterdir() if (m := PART_RE.match(p.name)))

    def path(self, index: int) -> Path:
        return self.dir / f"part-{index:06d}.parquet"

    def write(self, index: int, df: pl.DataFrame) -> None:
        atomic_write_parquet(df, self.path(index))

    def read_all(self) -> pl.DataFrame | None:
        idx = self.indices()
        if not idx:
            return None
        return pl.concat([pl.read_parquet(self.path(i)) for i in idx], how="diagonal_relaxed")


class GroupCommitBackend(BaseJournalBackend):
    """A journal-file backend that buffers appended records until `flush()` (one write + fsync).

    Assumes one writer per journal (the run lock guarantees it); other readers, e.g.
    optuna-dashboard, see whole batches."""

    def __init__(self, path: Path):
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
    """Copy of the study's completed trials in an Optuna storage, appended once per batch."""

    def __init__(self, storage: str | None, run_dir: Path, study_name: str, directions: list[str]):
        self.backend: GroupCommitBackend | None = None
        if storage is None:
            self.location = str(Path(run_dir) / "journal.log")
            self.backend = GroupCommitBackend(Path(self.location))
            self.storage: optuna.storages.BaseStorage = JournalStorage(self.backend)
        else:
            self.location = storage
            self.storage = optuna.storages.get_storage(storage)
        self.study_name = study_name
        try:
            self.study_id = self.storage.get_study_id_from_name(study_name)
        except KeyError:
            self.study_id = self.storage.create_new_study(
                [optuna.study.StudyDirection.MAXIMIZE if d == "maximize" else optuna.study.StudyDirection.MINIMIZE
                 for d in directions], study_name)
            self.flush()
        self.count = len(self.storage.get_all_trials(self.study_id, deepcopy=False))

    def append(self, trials: list[optuna.trial.FrozenTrial]) -> None:
        """Add trials numbered ≥ the mirror's count (earlier ones are already there)."""
        for t in trials:
            if t.number < self.count:
                continue
            self.storage.create_new_trial(self.study_id, template_trial=t)
            self.count += 1
        self.flush()

    def set_study_attrs(self, attrs: dict[str, Any]) -> None:
        for k, v in attrs.items():
            self.storage.set_study_user_attr(self.study_id, k, v)
        self.flush()

    def flush(self) -> None:
        if self.backend is not None:
            self.backend.flush()


class RunLock:
    """Exclusive lock on a run folder (released by the OS if the process dies)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
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


def write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, default=_json_default) + "\n").encode())


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)
