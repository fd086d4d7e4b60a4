"""`step_kernel._time_batch` takes the operators past `res_cols[s]` (no weights, no KV, nothing streamed:
`_row_tables`) from the instance before when it times the same step on the same design under the same free SRAM
(another residency): the same bits as timing each instance on its own. The oracle here is the full path: the same
instances with another design's instance between each two, so that none follows its own (step, design)."""

from __future__ import annotations

import numpy as np
import pytest

from dse.model import perf
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology

from _designs import random_designs  # noqa: E402
from _kernels import kernel_runner, needs_numba  # noqa: E402
from _steps import extended_mix_tables  # noqa: E402

pytestmark = needs_numba


@pytest.fixture
def kernel(monkeypatch):
    """Run a function under DSE_KERNEL=mode (the path chosen afresh)."""
    yield kernel_runner(monkeypatch)
    perf.reset_kernel()


def _runs(n_steps: int, n_designs: int, seed: int):
    """Runs of 1-6 instances of one (step, design), each with its own residency (whole, none or a share) and, in
    one run of three, resident bytes that change within the run; energy wanted on most."""
    rng = np.random.default_rng(seed)
    step_of, design_of, wres, kres, res = [], [], [], [], []
    for _ in range(250):
        s, d, r = int(rng.integers(0, n_steps)), int(rng.integers(0, n_designs)), int(rng.integers(1, 7))
        same_res = rng.random() < 0.67
        base = float(rng.uniform(0, 2e8)) * (rng.random() < 0.5)
        for _ in range(r):
            step_of.append(s)
            design_of.append(d)
            wres.append(float(rng.choice([0.0, 1.0, rng.random()])))
            kres.append(float(rng.choice([0.0, 1.0, rng.random()])))
            res.append(base if same_res else float(rng.uniform(0, 2e8)))
    m = len(step_of)
    return (np.array(step_of), np.array(design_of), np.array(wres), np.array(kres), np.array(res),
            rng.random(m) < 0.8)


@pytest.mark.parametrize("cls,update", [
    ("tuned", {}), ("generic", {}),
    ("tuned", {"comm_overlap": 0.6, "knee_p": 3.0}),
    ("generic", {"comm_overlap": 1.0, "knee_p": 1.0, "launch_us": 40.0, "fuse_epilogues": True}),
])
def test_a_run_of_residencies_equals_each_instance_timed_alone(kernel, cls, update):
    from dse.evaluate.table import design_metrics
    from dse.model.calibration import load_calibration

    cal = load_calibration(cls).model_copy(update=update)
    hw, _, _, _ = design_metrics(DesignArrays.from_columns(random_designs(200, 5), default_technology()))
    tables = extended_mix_tables(hw.num_chips)
    step_of, design_of, wres, kres, res, energy = _runs(len(tables), hw.n, 11)
    m = len(step_of)
    t_run, e_run = kernel("numba", perf.step_times, tables, step_of, design_of, hw, cal, wres, kres, res, energy)
    # the oracle: each instance followed by one of another design, so that no instance reuses the one before
    other = (design_of + 1) % hw.n

    def spread(x, y):
        return np.stack([x, y], axis=1).reshape(-1)

    args = (spread(step_of, step_of), spread(design_of, other), spread(wres, wres), spread(kres, kres),
            spread(res, res), spread(energy, energy))
    t_one, e_one = kernel("numba", perf.step_times, tables, args[0], args[1], hw, cal, *args[2:])
    assert (np.diff(design_of) == 0).sum() > 300  # runs of the same design do occur
    assert np.array_equal(t_run.view(np.int64), t_one[::2].view(np.int64))
    assert np.array_equal(e_run.view(np.int64), e_one[::2].view(np.int64))
    assert np.isnan(e_run[~energy]).all() and m > 500
