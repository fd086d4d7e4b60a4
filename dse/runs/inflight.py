"""One background job at a time, in order, on its own thread: run-folder writes (a part's fsync, a journal
append) that overlap the next batch's work while a crash loses at most the one in flight."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

__all__ = ["OneInFlight", "thread_pool"]


def thread_pool(name: str, workers: int = 1) -> ThreadPoolExecutor:
    """A pool for dse's background threads (run-folder writes, frames), started after polars has loaded numpy on
    the calling thread: polars imports numpy through a lazy proxy module whose first use from two threads at
    once can fail (its loader copies numpy's names over its own, `_globals` among them, so a second thread
    inside it then reads `numpy._globals`: "TypeError: 'module' object does not support item assignment",
    seen once in the attached-cluster sweep, tests/test_ray_cluster.py)."""
    import numpy as np
    import polars as pl

    pl.Series(np.zeros(1))  # polars checks the value against `np.ndarray` through the proxy: loads numpy
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)


class OneInFlight:
    """`submit` waits for the job before it (so at most one is in flight) and starts `fn(*args)` on a worker
    thread; `wait` returns when it is done and raises its error (e.g. EIO, a full disk); `close` waits and
    stops the thread (idempotent)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._pool: ThreadPoolExecutor | None = None
        self._job: Future | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self.wait()
        if self._pool is None:
            self._pool = thread_pool(self._name)
        self._job = self._pool.submit(fn, *args)

    def wait(self) -> None:
        if self._job is not None:
            job, self._job = self._job, None
            job.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None
