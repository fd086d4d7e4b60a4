"""Where batches are evaluated: in-process, or as vectorized chunks on Ray (embedded or attached).

`ray_session()` follows reference/ecosystem.md §6: an explicit address or RAY_ADDRESS attaches (never
passing num_cpus), otherwise `ray.init(address="local")` starts an embedded instance that is shut
down at the end; an already initialised Ray (a job, a test fixture, a sweep task) is reused.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import sys
import time
import traceback
from typing import Any, Callable, Iterator

import numpy as np

from dse.errors import DseUserError

Columns = dict[str, np.ndarray]


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """Connect to or start Ray for the duration of the block; yields the `ray` module."""
    import ray

    started = False
    if ray.is_initialized():
        pass
    elif address:
        check_reachable(address)
        _attach(ray, address)
        started = True
    elif os.environ.get("RAY_ADDRESS"):
        check_reachable(os.environ["RAY_ADDRESS"], "RAY_ADDRESS")
        _attach(ray, None)
        started = True
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level="WARNING",
                 log_to_driver=False)
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


# HTTP/2 connection prefaces (RFC 9113 §3.4): the client sends the magic string and a SETTINGS frame; a
# server must answer with a SETTINGS frame (9-byte header: length, type 0x4, flags, stream 0). Ray's GCS
# and Ray Client server are gRPC servers, so they speak HTTP/2; anything else fails this at once.
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
_H2_SETTINGS = 0x04


def _h2_settings_prefix(head: bytes) -> bool:
    """Whether `head` can begin the header of an HTTP/2 SETTINGS frame (length a multiple of 6 up to the
    16 KiB default frame size, type 0x4, stream 0), so that garbage is rejected on its first bytes."""
    if len(head) >= 3:
        length = int.from_bytes(head[:3], "big")
        if length % 6 or length > 16384:
            return False
    if len(head) >= 4 and head[3] != _H2_SETTINGS:
        return False
    return len(head) < 9 or int.from_bytes(head[5:9], "big") & 0x7FFFFFFF == 0


def check_reachable(address: str, what: str = "--address / execution.address", timeout_s: float = 3.0) -> None:
    """Fail fast (a DseUserError naming the address within `timeout_s`, not a hang: `ray.init` retries for
    minutes) unless a `host:port` or `ray://host:port` address accepts a TCP connection and answers the
    HTTP/2 handshake that every gRPC server (Ray's GCS, Ray Client) answers. With RAY_USE_TLS only the
    TCP connection is checked (the handshake would then start with TLS)."""


    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise DseUserError(f"{what} '{address}': expected host:port (e.g. 127.0.0.1:6379), ray://host:10001 or auto")
    deadline = time.monotonic() + timeout_s
    hint = "start one with `ray start --head` or fix the address"
    try:
        sock = socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=0.6 * timeout_s)
    except OSError as exc:
        why = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise DseUserError(f"{what} '{address}': no Ray cluster answers there ({why}); {hint}") from None
    if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):
        sock.close()
        return
    with sock:
        try:
            sock.settimeout(max(0.2, deadline - time.monotonic()))
            sock.sendall(_H2_PREFACE)
            head = b""
            while len(head) < 9 and _h2_settings_prefix(head):
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
        except TimeoutError:
            raise DseUserError(f"{what} '{address}': something accepts connections there but does not answer like "
                               f"Ray (no gRPC reply within {timeout_s:g} s); is it the Ray head's GCS port (default "
                               f"6379) or ray://HOST:10001? {hint}") from None
        except OSError as exc:
            head = b""
            reset = exc.strerror or str(exc)
        else:
            reset = "it closed the connection"
    if len(head) < 9 or not _h2_settings_prefix(head):
        got = f"got {head!r}" if head else reset
        raise DseUserError(f"{what} '{address}': answered, but not as Ray ({got}; a Ray head speaks gRPC); is it the "
                           f"Ray head's GCS port (default 6379) or ray://HOST:10001? {hint}")


def _ray_initialized() -> bool:
    """True when this process already runs Ray (a job, a test fixture, a sweep task): it is reused as is."""
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def _attach(ray: Any, address: str | None) -> None:
    """`ray.init` onto an existing cluster; connection failures become user errors."""

    try:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    except (ConnectionError, TimeoutError, ValueError) as exc:
        raise DseUserError(f"cannot attach to the Ray cluster at {address or os.environ.get('RAY_ADDRESS')}: "
                           f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def take(cols: Columns, sl: slice | np.ndarray) -> Columns:
    return {k: v[sl] for k, v in cols.items()}


def concat(parts: list[Columns]) -> Columns:
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _n(cols: Columns) -> int:
    return len(next(iter(cols.values()))) if cols else 0


class EvalError(Exception):
    """A chunk whose evaluation raised; carries the message stored with the failed trials. `transient`:
    the infrastructure failed (worker or node died, connection lost), not the design: the runner retries
    the chunk, and a resumed run re-runs trials that still failed this way."""

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient


class TransientError(Exception):
    """Raised by an evaluator for a failure of the infrastructure (not of the design): retried."""


# failures of the machine or cluster rather than of the design
TRANSIENT = (TransientError, ConnectionError, TimeoutError, MemoryError)


def eval_chunk(evaluator: Callable[[Columns], Columns], cols: Columns) -> Columns | EvalError:
    """Run the model on one chunk; an exception becomes an EvalError value (recorded, not raised)."""
    try:
        return evaluator(cols)
    except Exception as exc:  # noqa: BLE001 - any model error fails just this chunk's trials
        tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
        return EvalError(f"evaluation error: {tb}", transient=isinstance(exc, TRANSIENT))


class SerialExecutor:
    """Evaluate in the driver process (tests, profiling, tiny batches, sweep sub-studies)."""

    kind = "serial"

    def __init__(self, evaluator: Callable[[Columns], Columns]):
        self.evaluator = evaluator
        self.cpus = 1

    def evaluate(self, cols: Columns) -> list[tuple[slice, Columns | EvalError]]:
        return [(slice(0, _n(cols)), eval_chunk(self.evaluator, cols))]

    def close(self) -> None:
        pass


class RayExecutor:
    """Split a batch into chunks (≤ chunk_size, ~2 per CPU) and evaluate them as Ray tasks.

    Batches below `inline_below` designs run in-process: Ray's ~1.5 ms round trip would cost more
    than the vectorized model. Ray starts lazily on the first batch that needs it."""

    kind = "ray"

    def __init__(self, evaluator: Callable[[Columns], Columns], *, address: str | None = None,
                 num_cpus: int | None = None, chunk_size: int = 2048, inline_below: int = 256):
        self.evaluator = evaluator
        self.address, self.num_cpus = address, num_cpus
        self.chunk_size, self.inline_below = chunk_size, inline_below
        self._stack: contextlib.ExitStack | None = None
        self._remote = None
        self._ev_ref = None
        self.cpus = num_cpus or os.cpu_count() or 1
        self.ray_start_s = 0.0
        self.tasks = 0

    def start(self) -> None:
        if self._stack is not None:
            return
        t0 = time.perf_counter()
        stack = contextlib.ExitStack()
        ray = stack.enter_context(ray_session(self.address, self.num_cpus))  # raises → nothing to close
        self._stack = stack
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(max_retries=3)(eval_chunk)
        self._ev_ref = ray.put(self.evaluator)
        self.ray_start_s = time.perf_counter() - t0

    def evaluate(self, cols: Columns) -> list[tuple[slice, Columns | EvalError]]:
        n = _n(cols)
        if n < self.inline_below or n == 0:
            return [(slice(0, n), eval_chunk(self.evaluator, cols))]
        self.start()
        import ray

        k = max(1, min(math.ceil(n / max(1, self.inline_below // 2 or 1)), 2 * self.cpus))
        k = max(k, math.ceil(n / self.chunk_size))
        bounds = np.linspace(0, n, k + 1).astype(int)
        slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        refs = [self._remote.remote(self._ev_ref, take(cols, s)) for s in slices]
        self.tasks += len(refs)
        out = []
        for s, ref in zip(slices, refs):
            try:
                out.append((s, ray.get(ref)))
            except Exception as exc:  # worker died beyond retries, object lost, ...
                msg = str(exc).splitlines()[0][:300] if str(exc) else ""
                out.append((s, EvalError(f"evaluation error: {type(exc).__name__}: {msg}", transient=True)))
        return out

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None


def make_executor(execution: Any, evaluator: Callable[[Columns], Columns], *, serial: bool = False,
                  address: str | None = None) -> SerialExecutor | RayExecutor:
    """Executor for a spec's `execution` block (CLI flags override backend and address)."""
    if serial or execution.backend == "serial":
        return SerialExecutor(evaluator)
    target = address or execution.address
    if (target or os.environ.get("RAY_ADDRESS")) and not _ray_initialized():  # fail before a run folder is touched
        check_reachable(target) if target else check_reachable(os.environ["RAY_ADDRESS"], "RAY_ADDRESS")
    return RayExecutor(evaluator, address=address or execution.address, num_cpus=execution.num_cpus,
                       chunk_size=execution.chunk_size, inline_below=execution.inline_below)
