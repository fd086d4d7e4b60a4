"""Where batches are evaluated: in-process, or as vectorized chunks on Ray (embedded or attached).

`ray_session()` follows reference/ecosystem.md §6: an explicit address or RAY_ADDRESS attaches (never
passing num_cpus; the address is probed first, token authentication included), otherwise an embedded
one-node Ray (`ray_head.LocalHead`, which dies with this process) is started and stopped at the end; an
already initialised Ray (a job, a test fixture, a sweep task) is reused. `RayExecutor` decides per batch
whether Ray pays (see its docstring).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import sys
import threading
import time
import traceback
from typing import Any, Callable, Iterator

import numpy as np

from dse.errors import DseUserError
from dse.study.cache import Normalized
from dse.study.ray_head import LocalHead, apply_env, find_token, quiet_connect

Columns = dict[str, np.ndarray]
log = logging.getLogger(__name__)


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """Connect to or start Ray for the duration of the block; yields the `ray` module."""
    import ray

    if ray.is_initialized():
        yield ray
        return
    target = address or os.environ.get("RAY_ADDRESS")
    head = None
    try:
        if target:
            apply_env(check_reachable(target, "--address / execution.address" if address else "RAY_ADDRESS"))
            _attach(ray, address)
        else:
            head = LocalHead(num_cpus)
            head.wait()
            head.connect(ray)
        yield ray
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if head is not None:
            head.close()


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


def check_reachable(address: str, what: str = "--address / execution.address",
                    timeout_s: float = 3.0) -> dict[str, str]:
    """Fail fast (a DseUserError naming the address within `timeout_s` + 2 s, not a hang: `ray.init` retries
    for minutes) unless a `host:port` or `ray://host:port` address accepts a TCP connection and answers the
    HTTP/2 handshake that every gRPC server (Ray's GCS, Ray Client) answers; then, for a GCS address, that
    it is Ray's GCS and whether it wants a token. Returns the environment to attach with (RAY_AUTH_MODE=token
    when the cluster uses Ray's token authentication and the user did not set a mode). With RAY_USE_TLS
    only the TCP connection is checked (the handshake would then start with TLS)."""
    if address in ("auto", "local"):
        return {}
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
        return {}
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
    if "://" in address:  # Ray Client: its server checks the token itself
        return {}
    return _gcs_auth(address, hostport, what)


# a cheap read-only call every Ray GCS serves (ray/core/generated/gcs_service_pb2_grpc.py); its request
# message has no required field, so an empty body is a valid request
_GCS_PROBE = "/ray.rpc.NodeInfoGcsService/GetClusterId"
_GCS_PROBE_S = 1.0  # with the 3 s handshake check: a wrong address fails within 5 s (issue 14)
_TOKEN_DOC = "https://docs.ray.io/en/latest/ray-security/token-auth.html"


def _gcs_call(hostport: str, token: str | None) -> Any:
    """The gRPC status of one GetClusterId call (None when it succeeded)."""
    import grpc  # Ray's own dependency

    with grpc.insecure_channel(hostport) as ch:
        call = ch.unary_unary(_GCS_PROBE)
        try:
            call(b"", timeout=_GCS_PROBE_S, metadata=[("authorization", f"Bearer {token}")] if token else None)
        except grpc.RpcError as exc:
            return exc.code()
    return None


def _gcs_auth(address: str, hostport: str, what: str) -> dict[str, str]:
    """Whether the GCS at `hostport` is Ray's and wants Ray's token (RAY_AUTH_MODE=token plus a token found
    where Ray looks: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token); errors name the address."""
    import grpc

    mode = os.environ.get("RAY_AUTH_MODE", "").lower()
    token, where = find_token()
    status = _gcs_call(hostport, None)
    if status is None:
        return {}  # the cluster does not use token authentication
    if status in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        raise DseUserError(f"{what} '{address}': the Ray GCS there did not answer within {_GCS_PROBE_S:g} s "
                           f"({status.name}); is the head still starting, or overloaded?")
    if status != grpc.StatusCode.UNAUTHENTICATED:
        raise DseUserError(f"{what} '{address}': answered gRPC, but not as a Ray GCS ({status.name}); is it the Ray "
                           "head's GCS port (default 6379) or ray://HOST:10001?")
    how = (f"put the head's token (`ray get-auth-token` on the head) in RAY_AUTH_TOKEN, in a file named by "
           f"RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token; see {_TOKEN_DOC}")
    if mode == "disabled":
        raise DseUserError(f"{what} '{address}': the cluster uses Ray's token authentication but RAY_AUTH_MODE is "
                           f"'disabled' here; unset it (or set it to token) and {how}")
    if token is None:
        raise DseUserError(f"{what} '{address}': the cluster uses Ray's token authentication and no token was "
                           f"found ({where}); {how}")
    if _gcs_call(hostport, token) is not None:
        raise DseUserError(f"{what} '{address}': the cluster refused the token from {where} (it is not this "
                           f"cluster's token); {how}")
    return {} if mode == "token" else {"RAY_AUTH_MODE": "token"}


def _ray_initialized() -> bool:
    """True when this process already runs Ray (a job, a test fixture, a sweep task): it is reused as is."""
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def _attach(ray: Any, address: str | None) -> None:
    """`ray.init` onto an existing cluster; connection failures become user errors."""
    try:
        with quiet_connect():
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

    def __reduce__(self) -> tuple:  # pickled with its flag (a model process sends it back)
        return (EvalError, (str(self), self.transient))


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


# Whether a serial study evaluates the model in a forked process (`ModelProcess`): DSE_MODEL_PROCESS=never (default:
# one process), always, or auto (on Linux with an idle CPU and at least MODEL_PROCESS_MIN_BATCHES batches, for an
# evaluator that says it is `pure`). The array NSGA-II breeds a generation from the population two generations back
# (samplers.BREED_LAG), so two generations are in flight: one process evaluates them with one model call
# (`StudyRunner._evaluate_together`; a model call is mostly fixed cost), and so does the model process, which gets
# them together (`StudyRunner._dispatch`, runner.MODEL_PROCESS_PAIRS) and evaluates them while the run stores the two
# generations before them (writing their parts, journal lines and frames: work off the chain breed -> evaluate ->
# select); the run's chain (score, select, breed) and the model's calls still alternate, the stores no longer add to
# them. Measured (benchmarks/study_speed.py's study, local mix, 10k trials, seeds 1-3, 2 cores shared with other
# jobs at CPU pressure 60-96 %, 2026-12-03 20:32 UTC): the run's main thread 0.49-0.62 CPU s (its chain ~0.25) and the
# model process 0.47-0.61, against one process's main thread 0.91-0.97; on that busy machine the walls were no better
# with it (runner / pymoo 1.26-1.92x against 1.56-1.96x: each hand-over waits for a time slice), hence `auto` only where
# a CPU is idle. Balanced mix, 5,000 trials: the model process 2.48-2.62 CPU s and the run's main thread 0.28-0.32,
# against 2.84-2.90 in one process. The idle wall is at least the chain plus the model process's time (their calls
# alternate): in CPU s 0.79-0.90 against one process's main thread 0.68-0.94 (the same runs): the stores it overlaps
# (~0.1 s) are about what the second process costs (sending the columns, the model's own ~0.05-0.1 s more there), so
# it stays off by default until an idle machine's walls say otherwise (benchmarks/study_speed.py, interleaved
# DSE_MODEL_PROCESS=always / never; on an idle machine, 2026-12-03 21:18, main 8ffed2c, seeds 1-3, two runs each:
# runner / pymoo 1.53-1.94x with it, 1.53-2.02x without: no gain). Results are the same every way (the lag is the
# sampler's)
MODEL_PROCESS_ENV = "DSE_MODEL_PROCESS"
MODEL_PROCESS_DEFAULT = "never"
# `auto` forks no model process for a run of fewer batches: forking it and ending it cost ~30-50 ms of wall (measured,
# 300 trials in 3 batches: 0.21-0.36 s with it, 0.14-0.30 s without), more than it saves on a short run
MODEL_PROCESS_MIN_BATCHES = 30


def model_process_wanted(evaluator: Any, batches: int | None) -> bool:
    """Whether a serial run of `batches` batches (None: open-ended) evaluates in a `ModelProcess`: the
    evaluator must be a pure function of the design (`pure = True`: a copy in another process gives the same
    results; a toy evaluator that counts its calls is not) and fork must be safe here (Linux); `auto` also
    wants an idle CPU and at least MODEL_PROCESS_MIN_BATCHES batches."""
    how = os.environ.get(MODEL_PROCESS_ENV, MODEL_PROCESS_DEFAULT)
    if how == "never" or not is_pure(evaluator) or not sys.platform.startswith("linux"):
        return False
    if how == "always":
        return True
    if (batches is not None and batches < MODEL_PROCESS_MIN_BATCHES) or (os.cpu_count() or 1) < 2:
        return False
    if _ray_initialized():  # a Ray worker or driver (a sweep's task): its gRPC threads make a fork unsafe
        return False
    return cpu_idle()


# CPU pressure (Linux PSI, /proc/pressure/cpu `some avg10`: the share of the last 10 s in which a runnable task
# waited for a CPU) below which a CPU counts as idle. On a busy machine each hand-over between the run and its
# model process waits for a time slice: measured on 2 cores shared with other jobs (pressure 60-80 %), 10k trials
# took 1.5-2.4 s in one process and 2.1-3.4 s with a model process
IDLE_CPU_PRESSURE_PCT = 10.0


def cpu_idle() -> bool:
    """Whether another CPU is free for the model process: CPU pressure below IDLE_CPU_PRESSURE_PCT, or where
    Linux does not report it, a 1-minute load average that leaves a CPU beside this process's own."""
    try:
        with open("/proc/pressure/cpu") as f:
            some = f.readline().split()
        return float(some[1].split("=")[1]) < IDLE_CPU_PRESSURE_PCT
    except (OSError, IndexError, ValueError):
        return os.getloadavg()[0] <= (os.cpu_count() or 1) - 1


def is_pure(evaluator: Any) -> bool:
    """Whether the evaluator's own class states `pure = True` (inherited, it does not count: a subclass of the
    model that keeps state, e.g. counts its calls, would keep it in the child process)."""
    return vars(type(evaluator)).get("pure") is True


def pack_columns(cols: Any) -> tuple:
    """Columns as sent between processes: the 1-D number columns of each dtype (of one length) stacked into one
    2-D block (a pickled array costs ~5 us: a generation's ~50 metric columns took ~0.25 ms each way), the others
    as they are; `unpack_columns` gives back the same columns in the same order (anything but a dict as it is)."""
    if not isinstance(cols, dict):
        return (cols,)
    n = None
    groups: dict[str, list[str]] = {}
    rest: dict[str, Any] = {}
    for k, v in cols.items():
        if isinstance(v, np.ndarray) and v.ndim == 1 and v.dtype.kind in "biuf" and n in (None, len(v)):
            n = len(v)
            groups.setdefault(v.dtype.str, []).append(k)
        else:
            rest[k] = v
    blocks = [(names, np.stack([cols[k] for k in names])) for names in groups.values()]
    return list(cols), blocks, rest


def unpack_columns(packed: tuple) -> Any:
    """`pack_columns` undone: each number column a row of its block (a view; rows do not overlap)."""
    if len(packed) == 1:
        return packed[0]
    order, blocks, rest = packed
    got = dict(rest)
    for names, block in blocks:
        got.update(zip(names, block))
    return {k: got[k] for k in order}


# chunks the model process evaluates with one model call at most: those that queued up while it was busy (the run
# sends generation g + 1 while g is evaluated; see `_serve`)
MODEL_PROCESS_JOINT = 2


def _rows(r: Columns, sl: slice) -> Columns:
    """Rows `sl` of a chunk's result columns (still `Normalized` when they were)."""
    out = {k: v[sl] for k, v in r.items()}
    return Normalized(out) if type(r) is Normalized else out


def evaluate_jointly(evaluate: Callable[[Columns], list], batches: list[Columns]) -> list[list]:
    """Evaluate several batches with one call of `evaluate` (batch columns -> [(slice, result or EvalError)], as
    `SerialExecutor.evaluate` gives) and return each batch's own [(slice, result)] (slices into that batch). The
    model's cost per call is mostly fixed (a generation's ~90 new designs ~4 ms, two generations' ~180 ~6 ms), so
    batches waiting together are evaluated together. A design's results do not depend on the others in the call
    (the evaluator is pure: `is_pure`); a chunk that fails fails the rows of every batch in it."""
    if len(batches) == 1 or not all(_n(cols) for cols in batches):  # (an empty batch: each alone)
        return [evaluate(cols) for cols in batches]
    results = evaluate(concat(batches))
    out, start = [], 0
    for cols in batches:
        stop = start + _n(cols)
        mine = []
        for s, r in results:
            a, b = max(s.start, start), min(s.stop, stop)
            if a < b:
                mine.append((slice(a - start, b - start), r if isinstance(r, EvalError) else
                             _rows(r, slice(a - s.start, b - s.start))))
        out.append(mine)
        start = stop
    return out


# a result the model process sends from its own loop rather than through its sender thread when it pickles to at
# most this many bytes and no earlier result is still queued there (`_serve`): the runner leaves at most
# `ArrayNSGAII.lag` + 1 = 2 results unread, and two of these (128 KB) do not fill the socket's buffer (Linux's
# default net.core.wmem_default, 212,992 bytes), so this send never waits for the parent. A generation of 100
# new designs' results: ~47 KB (benchmarks/study_speed.py's study, random designs), 180 designs ~81 KB
DIRECT_SEND_BYTES = 64_000


def _serve(evaluator: Callable[[Columns], Columns], conn: Any, other: Any, work: Callable | None = None) -> None:
    """The model process: evaluate each chunk received, send back (result or EvalError, CPU seconds of the
    call, model calls it took); stop at None or when the parent's end closes (a killed parent). A large result
    is sent by a thread, so that this loop is always back to receiving: the parent sends the next chunk before it
    receives the last result (several in flight), and a chunk and a result each larger than the socket's buffer
    (~200 KB: a generation of ~1,000 designs) would otherwise wait for each other forever. A small one is sent
    from this loop (`DIRECT_SEND_BYTES`): handed to the thread, it waited for the thread to get the interpreter
    lock from this loop, busy with the next chunk (up to the 5 ms switch interval per step of the send; measured
    0.15-0.26 s per 10,000 trials, 1.5-2.6 ms per generation on 2 loaded cores).

    `work` (see `ModelProcess`): the chunks received together (each (columns, *what was sent with them)) go to
    `work`, which returns per chunk what to send back, as (payload, model CPU seconds, model calls)."""
    other.close()  # the parent's end: once the parent is gone, recv() ends (EOF) instead of waiting forever
    import queue
    import signal
    import threading
    from multiprocessing.reduction import ForkingPickler

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops the parent, which then closes this process
    out: queue.Queue = queue.Queue()  # pickled results for the sender thread (its unfinished tasks: not sent yet)

    def send() -> None:
        while (item := out.get()) is not None:
            try:
                conn.send_bytes(item)
            except (BrokenPipeError, OSError):
                return
            finally:
                out.task_done()

    sender = threading.Thread(target=send, name="dse-model-send", daemon=True)
    sender.start()
    try:
        while True:
            batches, stop = [], False
            try:  # the chunk to evaluate, and the one sent behind it while the model was busy
                while not batches or (len(batches) < MODEL_PROCESS_JOINT and conn.poll()):
                    packed = conn.recv()
                    if packed is None:
                        stop = True
                        break
                    batches.append(unpack_columns(packed) if work is None else (unpack_columns(packed[0]), *packed[1:]))
            except (EOFError, OSError):
                return
            if batches:
                if work is None:
                    t = time.thread_time()
                    results = evaluate_jointly(lambda cols: [(slice(0, _n(cols)), eval_chunk(evaluator, cols))],
                                               batches)
                    cpu = time.thread_time() - t
                    # each chunk's result, in order; the call's CPU on the first
                    replies = [(r if isinstance(r, EvalError) else pack_columns(r), cpu if i == 0 else 0.0, int(i == 0))
                               for i, ((_, r),) in enumerate(results)]
                else:
                    replies = work(batches)
                for reply in replies:
                    data = ForkingPickler.dumps(reply)
                    if len(data) <= DIRECT_SEND_BYTES and not out.unfinished_tasks:
                        try:
                            conn.send_bytes(data)
                        except (BrokenPipeError, OSError):
                            return
                    else:
                        out.put(data)
            if stop:
                return
    finally:
        out.put(None)
        sender.join()


class ModelProcess:
    """The model evaluated in a forked child process: `submit(cols)` returns at once and `result()` waits for the
    oldest chunk submitted (chunks are evaluated and returned in order; the runner keeps at most
    `ArrayNSGAII.lag` + 1 in flight). The runner asks and breeds the next generation, then stores the previous one while
    the model evaluates (issue 15: on 2 cores the model's ~5 ms per generation overlaps the run's own
    bookkeeping; a thread would not, both hold the GIL most of the time).

    Forked (not spawned) so that it starts in milliseconds with the parent's imports, numba kernels and warm
    caches; the child runs only the model and numpy work (numpy, numba; with `work`, the runner's reuse of results
    and scoring), never Polars, whose thread pool does not survive a fork. Fork it before the run takes its
    folder's locks, so that the child holds none of them. A dead child (`result()` returns None) or an error in
    the transfer leaves the parent to evaluate in-process.

    `work`: what the child does with the chunks it received together instead of evaluating them: called in the
    child with [(columns, *extra)] (`submit(cols, *extra)`), it returns per chunk (payload, model CPU seconds, model
    calls); `result()` then returns the payload as it is (the runner's `_child_work`: the chunk's results merged
    with the ones the child evaluated before and scored, so that the run's process does not)."""

    def __init__(self, evaluator: Callable[[Columns], Columns], work: Callable | None = None):
        import multiprocessing
        import warnings

        ctx = multiprocessing.get_context("fork")
        self._conn, child = ctx.Pipe()
        self.work = work
        self.proc = ctx.Process(target=_serve, args=(evaluator, child, self._conn, work), name="dse-model",
                                daemon=True)
        with warnings.catch_warnings():  # Python 3.12+ warns about fork in a threaded process; see the docstring
            warnings.simplefilter("ignore", DeprecationWarning)
            self.proc.start()
        child.close()
        self.cpu_s = 0.0  # CPU seconds of the model calls in the child
        self.calls = 0
        self.alive = True
        self._pending = 0  # chunks sent and not yet received
        self._stopped = False  # told to end (`stop`)

    def submit(self, cols: Columns, *extra: Any) -> None:
        """Send a chunk (`extra`: sent with it, for `work`)."""
        try:
            self._conn.send((pack_columns(cols), *extra) if self.work is not None else pack_columns(cols))
            self._pending += 1
        except (OSError, ValueError):
            self._died("cannot send a chunk")

    def result(self) -> Columns | EvalError | None:
        """The result of the oldest chunk in flight (an EvalError when the model raised; with `work`, its payload),
        None when the child died (then every chunk in flight is lost: each collect evaluates its own in-process)."""
        if not self._pending or not self.alive:
            return None
        self._pending -= 1
        try:
            out, cpu, calls = self._conn.recv()
        except (EOFError, OSError):
            self._died("it ended")
            return None
        self.cpu_s += cpu
        self.calls += calls
        return out if isinstance(out, EvalError) or self.work is not None else unpack_columns(out)

    def _died(self, why: str) -> None:
        if self.alive:
            log.warning("the model process stopped (%s, exit code %s); evaluating in-process", why,
                        self.proc.exitcode)
        self.alive = False

    def stop(self) -> None:
        """Tell the child to end (nothing in flight): it exits while this process finishes the run, and `close`
        then only reaps it."""
        if self.proc is None or self._pending or self._stopped:
            return
        with contextlib.suppress(OSError, ValueError):
            self._conn.send(None)
        self._stopped = True

    def close(self) -> None:
        """Stop the child (idempotent); its CPU time then counts in this process's RUSAGE_CHILDREN."""
        if self.proc is None:
            return
        if self._pending:  # stopped mid-batch (an error, Ctrl-C): its result is not wanted
            self.proc.kill()
        if not self._stopped:
            with contextlib.suppress(OSError, ValueError):
                self._conn.send(None)
        self.proc.join(5.0)
        if self.proc.exitcode is None:
            self.proc.kill()
            self.proc.join()
        self._conn.close()
        self.proc = None
        self.alive = False


# Cost model of the embedded Ray (issue 15: Ray start was 42-58 % of a ~6 s quickstart on 2 cores, and a
# 128-design batch took 84-116 ms on Ray against 62 ms in-process): what starting it and each Ray batch
# cost before anything is measured; the per-batch overhead is then measured on every Ray batch.
RAY_START_COST_S = 3.0
RAY_BATCH_OVERHEAD_S = 0.05


class RayExecutor:
    """Split a batch into chunks (≤ chunk_size, ~2 per CPU) and evaluate them as Ray tasks — where it pays.

    Attached (an address, RAY_ADDRESS, or a Ray this process already runs): every batch of at least
    `inline_below` designs goes to Ray. Embedded: batches run in-process and are timed; once the
    remaining work (`designs` expected this run) would save more on the other CPUs than Ray costs to
    start, an embedded Ray (`LocalHead`) starts in the background while batches keep running here; once
    it is up, a batch goes to Ray when its measured in-process time exceeds the Ray round trip plus
    its share per CPU. `start()` (grids, tests) starts and waits."""

    kind = "ray"

    def __init__(self, evaluator: Callable[[Columns], Columns], *, address: str | None = None,
                 num_cpus: int | None = None, chunk_size: int = 2048, inline_below: int = 256,
                 designs: int | None = None):
        self.evaluator = evaluator
        self.address, self.num_cpus = address, num_cpus
        self.chunk_size, self.inline_below = chunk_size, inline_below
        self.designs, self.done = designs, 0
        self._stack: contextlib.ExitStack | None = None
        self._head: LocalHead | None = None
        self._head_failed = False
        self._remote = None
        self._ev_ref = None
        self.cpus = num_cpus or os.cpu_count() or 1
        self.sec_per_design: float | None = None  # in-process, measured
        self.overhead_s = RAY_BATCH_OVERHEAD_S
        self.ray_start_s = 0.0  # time the driver waited for Ray (not counting a background start)
        self.ray_up_s: float | None = None  # launch → up of an embedded Ray
        self.tasks = 0
        self.batches = {"in_process": 0, "ray": 0}
        self._sample: Columns | None = None  # one design, to warm the workers up with
        self._warm: list = []
        self._connecting: threading.Thread | None = None
        self._connect_error: BaseException | None = None
        self.ray_connect_s = 0.0

    @property
    def attached(self) -> bool:
        """Batches always go to Ray: a cluster address was given, or this process already runs Ray."""
        return bool(self.address or os.environ.get("RAY_ADDRESS")) or (_ray_initialized() and self._head is None)

    @property
    def on_ray(self) -> bool:
        return self._remote is not None

    def start(self) -> None:
        """Attach to, or start and wait for, Ray (synchronous)."""
        if self._remote is not None:
            return
        t0 = time.perf_counter()
        import ray

        if self.attached or self._head_failed:
            stack = contextlib.ExitStack()
            stack.enter_context(ray_session(self.address, self.num_cpus))  # raises → nothing to close
            self._stack = stack
        else:
            if self._head is None:
                self._head = LocalHead(self.num_cpus)
            self._head.wait()
            self._head.connect(ray)
            self.ray_up_s = self._head.ready_s
        self._setup(ray)
        self.ray_start_s += time.perf_counter() - t0

    def _setup(self, ray: Any) -> None:
        self.cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(max_retries=3)(eval_chunk)
        self._ev_ref = ray.put(self.evaluator)

    def poll(self) -> bool:
        """True once batches can go to a background-started embedded Ray: the node is up, this process is
        connected (in a thread, so the connect does not stall the run) and its workers are warm. A Ray
        that cannot start leaves the run in-process (said once in the log); it never fails it."""
        if self._remote is not None and not self._warm:
            return True
        if self._head is None or self._head_failed:
            return False
        if self._connecting is None:
            try:
                up = self._head.ready()
            except DseUserError as exc:
                return self._give_up(exc)
            if up:
                self._connecting = threading.Thread(target=self._connect_bg, daemon=True)
                self._connecting.start()
            return False
        if self._connecting.is_alive():
            return False
        if self._connect_error is not None:
            return self._give_up(self._connect_error)
        import ray

        done, _ = ray.wait(self._warm, num_returns=len(self._warm), timeout=0)
        if len(done) < len(self._warm):
            return False
        self._warm = []
        return True

    def _connect_bg(self) -> None:
        """Connect to the node and warm its workers up (one design per CPU), off the driver's thread."""
        try:
            import ray

            t0 = time.perf_counter()
            self._head.connect(ray)
            self._setup(ray)
            self.ray_up_s = self._head.ready_s
            self.ray_connect_s = time.perf_counter() - t0
            if self._sample is not None:
                self._warm = [self._remote.remote(self._ev_ref, self._sample) for _ in range(self.cpus)]
        except BaseException as exc:  # noqa: BLE001 - reported by poll() in the driver's thread
            self._connect_error = exc

    def _give_up(self, exc: BaseException) -> bool:
        log.warning("the embedded Ray is not used (%s); continuing in-process",
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        self._head_failed = True
        self._remote = None
        self._head.close()
        return False

    def launch(self) -> None:
        """Start the embedded Ray in the background (no wait)."""
        if self._head is None and not self.attached and not self._head_failed:
            self._head = LocalHead(self.num_cpus)

    def evaluate(self, cols: Columns) -> list[tuple[slice, Columns | EvalError]]:
        n = _n(cols)
        self.done += n
        if n == 0 or n < self.inline_below:
            self.batches["in_process"] += 1
            return [(slice(0, n), eval_chunk(self.evaluator, cols))]
        if self.attached:
            self.start()
            return self._on_ray(cols)
        if self.poll() and self._pays(n):
            return self._on_ray(cols)
        if self._sample is None:
            self._sample = take(cols, slice(0, 1))
        t0 = time.perf_counter()
        out = [(slice(0, n), eval_chunk(self.evaluator, cols))]
        spd = (time.perf_counter() - t0) / n
        self.sec_per_design = spd if self.sec_per_design is None else min(self.sec_per_design, spd)
        self.batches["in_process"] += 1
        if self._head is None and self._worth_starting(n):
            self.launch()
        return out

    def _slices(self, n: int) -> list[slice]:
        k = max(1, min(math.ceil(n / max(1, self.inline_below // 2 or 1)), 2 * self.cpus))
        k = max(k, math.ceil(n / self.chunk_size))
        bounds = np.linspace(0, n, k + 1).astype(int)
        return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

    def _ray_time(self, n: int) -> float:
        """Predicted wall time of an n-design batch on Ray: round trip + the in-process time shared by CPUs."""
        par = max(1, min(self.cpus, len(self._slices(n))))
        return self.overhead_s + n * (self.sec_per_design or 0.0) / par

    def _pays(self, n: int) -> bool:
        return self.sec_per_design is None or self._ray_time(n) < n * self.sec_per_design

    def _worth_starting(self, n: int) -> bool:
        """Would Ray on `self.cpus` CPUs save more than it costs to start, over the designs still to come?"""
        if self.cpus < 2 or self.sec_per_design is None:
            return False
        saving = n * self.sec_per_design - (self.overhead_s + n * self.sec_per_design / self.cpus)
        if saving <= 0:
            return False
        if self.designs is None:  # open-ended (timeout only): any saving per batch pays eventually
            return True
        return (self.designs - self.done) / n * saving > RAY_START_COST_S

    def _on_ray(self, cols: Columns) -> list[tuple[slice, Columns | EvalError]]:
        import ray

        n = _n(cols)
        slices = self._slices(n)
        t0 = time.perf_counter()
        refs = [self._remote.remote(self._ev_ref, take(cols, s)) for s in slices]
        self.tasks += len(refs)
        self.batches["ray"] += 1
        out = []
        for s, ref in zip(slices, refs):
            try:
                out.append((s, ray.get(ref)))
            except Exception as exc:  # worker died beyond retries, object lost, ...
                msg = str(exc).splitlines()[0][:300] if str(exc) else ""
                out.append((s, EvalError(f"evaluation error: {type(exc).__name__}: {msg}", transient=True)))
        if self.sec_per_design is not None:  # what the round trip cost beyond the work shared by the CPUs
            par = max(1, min(self.cpus, len(slices)))
            seen = max(0.0, time.perf_counter() - t0 - n * self.sec_per_design / par)
            self.overhead_s = 0.5 * self.overhead_s + 0.5 * seen
        return out

    def stats(self) -> dict[str, Any]:
        """Where this run's batches went and what Ray cost (summary.json `ray`)."""
        return {"batches_in_process": self.batches["in_process"], "batches_on_ray": self.batches["ray"],
                "ray_up_s": None if self.ray_up_s is None else round(self.ray_up_s, 3),
                "ray_connect_s": round(self.ray_connect_s, 3), "ray_wait_s": round(self.ray_start_s, 3),
                "ray_overhead_s_per_batch": round(self.overhead_s, 4),
                "in_process_s_per_design": self.sec_per_design}

    def close(self) -> None:
        if self._connecting is not None:
            self._connecting.join()  # a connect in flight finishes first (then shuts down with the rest)
        if self._stack is not None:
            self._stack.close()
            self._stack = None
        elif self._head is not None and self._remote is not None:
            import ray

            if ray.is_initialized():
                ray.shutdown()
        if self._head is not None:
            self._head.close()
            self._head = None
        self._remote = None


def make_executor(execution: Any, evaluator: Callable[[Columns], Columns], *, serial: bool = False,
                  address: str | None = None, designs: int | None = None) -> SerialExecutor | RayExecutor:
    """Executor for a spec's `execution` block (CLI flags override backend and address)."""
    if serial or execution.backend == "serial":
        return SerialExecutor(evaluator)
    target = address or execution.address
    if (target or os.environ.get("RAY_ADDRESS")) and not _ray_initialized():  # fail before a run folder is touched
        check_reachable(target) if target else check_reachable(os.environ["RAY_ADDRESS"], "RAY_ADDRESS")
    return RayExecutor(evaluator, address=address or execution.address, num_cpus=execution.num_cpus,
                       chunk_size=execution.chunk_size, inline_below=execution.inline_below, designs=designs)
