"""The model process is told to end once a run's last generation is in (`ModelProcess.stop`), so that it exits while
the run finishes (its results, journal and summary) instead of being stopped and waited for after it."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from dse.study.execution import ModelProcess

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the model process forks (Linux)")


class Double:
    pure = True

    def __call__(self, cols):
        return {"y": 2.0 * cols["x"]}


def test_a_stopped_model_process_exits_by_itself_and_close_reaps_it():
    mp = ModelProcess(Double())
    try:
        mp.submit({"x": np.arange(4.0)})
        mp.stop()  # a chunk in flight: not yet
        assert mp.proc.exitcode is None
        assert np.array_equal(mp.result()["y"], [0.0, 2.0, 4.0, 6.0])
        mp.stop()
        deadline = time.time() + 10
        while mp.proc.exitcode is None:  # it ends on its own
            assert time.time() < deadline, "the stopped model process did not end"
            time.sleep(0.005)
        assert mp.proc.exitcode == 0
    finally:
        mp.close()
    assert mp.proc is None and not mp.alive
    mp.close()  # idempotent
