"""The embedded Ray of one dse driver: `ray start --head --block` in a child process that dies with the driver.

The driver starts it in the background (its first batches run in-process meanwhile), attaches to it by
address once it is up, and stops it by closing a pipe. The child (`python -m dse.study.ray_head`) is the
watchdog: it reads that pipe, and on end of file — the driver closed it, exited or was SIGKILLed — it
sends SIGTERM to `ray start` (which drains and stops its node) and then SIGKILLs, by PID, every process
of the node that is still there (Ray's agents otherwise outlive a killed driver by minutes, issue 17).

Token authentication as Ray documents it (https://docs.ray.io/en/latest/ray-security/token-auth.html):
`RAY_AUTH_MODE=token` and the token in `RAY_AUTH_TOKEN`, the file named by `RAY_AUTH_TOKEN_PATH`, or
`~/.ray/auth_token`. The embedded node uses the user's token if there is one, else a fresh one that only
this driver and its node know (never written to disk); `RAY_AUTH_MODE=disabled` set by the user is kept.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from dse.errors import DseUserError

# the line `ray start` prints once its node (GCS, raylet, agents) is up (ray/scripts/scripts.py)
READY_LINE = "Ray runtime started."
# SIGTERM → SIGKILL grace for the node's processes (`ray start` drains them in ~0.5 s on 2 cores here)
STOP_GRACE_S = 3.0
# Ray's node ports that otherwise default to fixed numbers (6379, 10001, 52365, ...) and would clash
# between two dse runs on one machine (`ray start --help`)
PORT_FLAGS = ("--port", "--ray-client-server-port", "--node-manager-port", "--object-manager-port",
              "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port",
              "--metrics-export-port")


def find_token() -> tuple[str | None, str]:
    """Ray's auth token the way Ray looks it up: RAY_AUTH_TOKEN, then RAY_AUTH_TOKEN_PATH, then
    ~/.ray/auth_token. Returns (token or None, where it was looked for / found)."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return os.environ["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN"
    path = Path(os.environ["RAY_AUTH_TOKEN_PATH"]) if os.environ.get("RAY_AUTH_TOKEN_PATH") else (
        Path.home() / ".ray" / "auth_token")
    try:
        token = path.read_text().strip()
    except OSError:
        return None, f"RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or {path}"
    return (token or None), str(path)


def auth_env() -> dict[str, str]:
    """Environment for an embedded node and its driver: token authentication on unless the user turned it
    off; the user's token if found, else a fresh one for this run only."""
    mode = os.environ.get("RAY_AUTH_MODE")
    if mode is not None and mode.lower() != "token":
        return {}
    token, _ = find_token()
    env = {"RAY_AUTH_MODE": "token"}
    if token is None:
        env["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    return env


def apply_env(env: dict[str, str]) -> None:
    """Put Ray auth settings into this process's environment. Ray reads RAY_AUTH_MODE and the token once,
    when `ray` is imported; if it already was, its cached config is refreshed the way `ray start` does it
    for itself (ray/_private/authentication/authentication_token_setup.py `_enable_token_auth`)."""
    if not env or all(os.environ.get(k) == v for k, v in env.items()):
        return
    os.environ.update(env)
    if "ray._raylet" in sys.modules:
        from ray._raylet import AuthenticationTokenLoader, Config

        Config.initialize("")
        AuthenticationTokenLoader.instance().reset_cache()


# Ray's own log lines at INFO/WARNING: C++ core `[2026-11-30 23:08:55,053 W 19603 19603] file.cc:330: ...`
# and Python `2026-11-30 22:30:39,708\tWARNING file.py:85 -- ...`
_RAY_CHATTER = re.compile(rb"^(\[\d{4}-\d\d-\d\d [\d:,.]+ [IW] \d+ \d+\] |\d{4}-\d\d-\d\d [\d:,.]+\s+(INFO|WARNING) \S+:\d+ -- )")


@contextlib.contextmanager
def quiet_connect() -> Iterator[None]:
    """While the driver connects, Ray's C++ core and loggers print INFO/WARNING lines straight to fd 2 (how it
    found the local IP, that token auth is on, ...); `--quiet` must not show them, and dse reports what
    matters itself. They are dropped; every other line (errors included) is passed on when the block ends."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as buf:
        os.dup2(buf.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            buf.seek(0)
            keep = b"".join(ln for ln in buf.read().splitlines(keepends=True) if not _RAY_CHATTER.match(ln))
            if keep:
                os.write(2, keep)


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class LocalHead:
    """A one-node Ray cluster owned by this driver, started without blocking (`ready()` polls)."""

    def __init__(self, num_cpus: int | None = None):
        self.tmp = Path(tempfile.mkdtemp(prefix="dse-ray-", dir="/tmp"))  # short: Ray's socket paths are length-limited
        self.log = self.tmp / "head.log"
        ports = _free_ports(len(PORT_FLAGS))
        self.port = ports[0]
        self.address = f"127.0.0.1:{self.port}"
        args = ["--head", "--block", "--temp-dir", str(self.tmp), "--include-dashboard", "false",
                "--disable-usage-stats", *[x for f, p in zip(PORT_FLAGS, ports) for x in (f, str(p))]]
        if num_cpus:
            args += ["--num-cpus", str(num_cpus)]
        self.env = auth_env()
        self.t0 = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-m", "dse.study.ray_head", str(self.tmp), *args],
                                     stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env={**os.environ, **self.env}, start_new_session=True)
        self.ready_s: float | None = None

    def ready(self) -> bool:
        """True once the node is up; a DseUserError if it could not start (with the end of its log)."""
        if self.ready_s is not None:
            return True
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            text = ""
        if READY_LINE in text:
            self.ready_s = time.perf_counter() - self.t0
            return True
        if self.proc.poll() is not None:
            tail = "\n".join(text.strip().splitlines()[-8:])
            raise DseUserError(f"the embedded Ray could not start (exit {self.proc.returncode}); its log:\n{tail}")
        return False

    def wait(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.ready():
            if time.monotonic() > deadline:
                self.close()
                raise DseUserError(f"the embedded Ray did not start within {timeout_s:g} s (log: {self.log})")
            time.sleep(0.05)

    def connect(self, ray: Any) -> None:
        """Attach this process to the node (the node's auth settings are put into this process's env)."""
        apply_env(self.env)
        with quiet_connect():
            ray.init(address=self.address, logging_level="WARNING", log_to_driver=False)

    def close(self) -> None:
        """Stop the node (without waiting: the watchdog finishes the job and removes the temp dir)."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass


# -- the watchdog child --------------------------------------------------------------------------------------

def _descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, start time) of every descendant of `pid`, from /proc (Linux)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = [int(c) for t in os.listdir(f"/proc/{p}/task")
                    for c in Path(f"/proc/{p}/task/{t}/children").read_text().split()]
        except OSError:
            continue
        for c in kids:
            out.append((c, _start_time(c)))
            todo.append(c)
    return out


def _start_time(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _kill_if_same(pid: int, start: str, sig: int) -> bool:
    """Signal `pid` unless it is gone or is now another process (PID reused). True if it was signalled."""
    if not start or _start_time(pid) != start:
        return False
    try:
        os.kill(pid, sig)
        return True
    except OSError:
        return False


def main(argv: list[str]) -> int:
    """`python -m dse.study.ray_head TMPDIR RAY-START-ARGS...`: run the node until stdin closes."""
    tmp, args = Path(argv[0]), argv[1:]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver decides; a Ctrl-C reaches it, not us
    with open(tmp / "head.log", "wb") as log:
        child = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", *args],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    eof = threading.Event()

    def watch() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            eof.set()

    threading.Thread(target=watch, daemon=True).start()
    while not eof.wait(0.2):
        if child.poll() is not None:
            break
    procs = _descendants(os.getpid())
    if child.poll() is None:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and any(_start_time(p) == s for p, s in procs):
        time.sleep(0.1)
    for p, s in procs:
        _kill_if_same(p, s, signal.SIGKILL)
    shutil.rmtree(tmp, ignore_errors=True)
    return child.wait() if child.poll() is None else child.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
