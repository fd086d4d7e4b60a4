"""The embedded Ray (issue 15.3 / 17): started only where it pays, and never outliving its driver.

`dse run` starts its own one-node Ray (`dse.study.ray_head.LocalHead`) as a child that watches a pipe from
the driver; these tests SIGKILL the driver and check by PID that every process of that Ray goes away, and
check the executor's decision rule on hand-set measurements."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dse.study import execution
from dse.study.execution import RAY_START_COST_S, RayExecutor
from dse.study.ray_head import _descendants, _start_time
from _spaces import ray_study_body, write_study

def _sweep(tmp: Path, trials: int) -> Path:
    return write_study(tmp, ray_study_body("k", budget={"trials": trials}, execution={"backend": "ray", "num_cpus": 1},
                                           sweep=[{"name": "a", "fixed": {"chip.process_node": "n7"}}]))


def _alive(procs: list[tuple[int, str]]) -> list[int]:
    return [p for p, s in procs if s and _start_time(p) == s and _state(p) != "Z"]


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def _names(procs: list[tuple[int, str]]) -> set[str]:
    out = set()
    for p, _ in procs:
        try:
            out.add(Path(f"/proc/{p}/comm").read_text().strip())
        except OSError:
            pass
    return out


def _driver(tmp: Path, trials: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.Popen([sys.executable, "-m", "dse", "run", str(_sweep(tmp, trials)), "--out", str(tmp / "runs"),
                             "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)


def _wait_for_ray(proc: subprocess.Popen, timeout_s: float = 120) -> list[tuple[int, str]]:
    """The driver's descendants once its Ray node is up (a raylet and at least one agent)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        procs = _descendants(proc.pid)
        names = _names(procs)
        if "raylet" in names and "gcs_server" in names and len(procs) >= 6:
            time.sleep(1.0)  # let the raylet start its agents
            return _descendants(proc.pid)
        if proc.poll() is not None:
            pytest.fail("the driver ended before its Ray was up: " + proc.stderr.read().decode()[-2000:])
        time.sleep(0.2)
    pytest.fail("no Ray node under the driver")


@pytest.mark.slow
def test_embedded_ray_dies_with_a_sigkilled_driver(tmp_path):
    proc = _driver(tmp_path, 100_000)
    try:
        procs = _wait_for_ray(proc)
        assert {"raylet", "gcs_server"} <= _names(procs)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        deadline = time.monotonic() + 20  # the watchdog: SIGTERM, 3 s grace, SIGKILL
        while time.monotonic() < deadline and _alive(procs):
            time.sleep(0.2)
        left = _alive(procs)
        assert left == [], [(p, Path(f"/proc/{p}/cmdline").read_bytes()[:120]) for p in left]
    finally:
        for p, s in _descendants(proc.pid) + [(proc.pid, _start_time(proc.pid))]:
            if s and _start_time(p) == s:
                os.kill(p, signal.SIGKILL)


@pytest.mark.slow
def test_embedded_ray_is_gone_after_a_normal_run(tmp_path):
    proc = _driver(tmp_path, 48)
    procs = _wait_for_ray(proc)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"k: 48 trials in 1 studies" in out
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _alive(procs):
        time.sleep(0.2)
    assert _alive(procs) == []


# -- where batches run ------------------------------------------------------------------------------------

def _cols(n: int) -> dict[str, np.ndarray]:
    return {"x": np.arange(n, dtype=float)}


class _Launches(RayExecutor):
    """Records launch decisions instead of starting Ray."""

    def launch(self) -> None:
        self.launched = True


def _executor(monkeypatch, sec_per_design: float, designs: int | None, cpus: int = 2) -> _Launches:
    monkeypatch.setattr(execution, "_ray_initialized", lambda: False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ex = _Launches(lambda cols: cols, num_cpus=cpus, inline_below=0, designs=designs)
    ex.launched = False
    ex.sec_per_design = sec_per_design  # as if measured on an earlier batch
    return ex


def test_ray_starts_only_when_the_remaining_work_pays_for_it(monkeypatch):
    # 128 designs at 10 ms each = 1.28 s per batch; on 2 CPUs Ray saves 1.28 - (0.05 + 0.64) = 0.59 s a batch
    saving = 128 * 0.01 - (0.05 + 128 * 0.01 / 2)
    batches_needed = RAY_START_COST_S / saving  # ~5 batches
    ex = _executor(monkeypatch, 0.01, designs=128 * 20)
    assert ex._worth_starting(128)
    ex = _executor(monkeypatch, 0.01, designs=int(128 * (batches_needed - 1)))
    assert not ex._worth_starting(128)
    # a fast model: the round trip costs more than the batch itself, never worth it
    ex = _executor(monkeypatch, 20e-6, designs=10**7)
    assert not ex._worth_starting(128)
    # one CPU: nothing to share
    ex = _executor(monkeypatch, 0.01, designs=10**7, cpus=1)
    assert not ex._worth_starting(128)
    # open-ended (a timeout only): any saving per batch pays eventually
    ex = _executor(monkeypatch, 0.01, designs=None)
    assert ex._worth_starting(128)


def test_a_batch_goes_to_ray_only_when_it_is_faster_there(monkeypatch):
    ex = _executor(monkeypatch, 0.01, designs=None)
    ex.overhead_s = 0.05
    assert ex._pays(128)  # 1.28 s here against 0.05 + 0.64 s there
    assert not ex._pays(8)  # 0.08 s here against 0.05 + 0.04 s there
    ex.overhead_s = 2.0  # a slow round trip measured on this machine
    assert not ex._pays(128)


def test_in_process_batches_launch_ray_once_measured(monkeypatch):
    ex = _executor(monkeypatch, None, designs=10**6)  # nothing measured yet
    calls = []

    def slow(cols):
        calls.append(len(cols["x"]))
        time.sleep(0.002 * len(cols["x"]))
        return cols

    ex.evaluator = slow
    out = ex.evaluate(_cols(64))
    assert calls == [64] and out[0][0] == slice(0, 64)
    assert ex.sec_per_design >= 0.002 and ex.batches["in_process"] == 1
    assert ex.launched  # 10^6 designs left at >= 2 ms each on 2 CPUs
