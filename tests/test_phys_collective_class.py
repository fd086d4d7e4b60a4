"""Interconnect classes of collectives (dse.model.perf._collective_class, issue 11): who runs a collective
decides what it costs. Library (GPU, or any chip over RDMA ports): the stack's floor + ring steps; compiled
(a statically scheduled chip on a scale-up fabric): per-hop latency only."""

import numpy as np
import pytest

from dse.catalog import load_catalog_design
from dse.model.arrays import DesignArrays
from dse.model.calibration import load_calibration
from dse.model.hardware import Design
from dse.model.perf import HwView, _collective_class, collective_time
from dse.model.technology import default_technology
from _designs import random_designs

TECH = default_technology()


def _hw(name: str) -> HwView:
    return HwView.from_arrays(DesignArrays.from_designs([Design.from_flat(load_catalog_design(name).to_flat())], TECH))


def _class_name(hw: HwView) -> list[str]:
    _, lib, p2p = _collective_class(hw)
    return ["library_p2p" if p else "library_rdma" if lb else "compiled" for lb, p in zip(lib, p2p)]


# the catalog's multi-chip systems and who runs their collectives (the reasons are in perf's module docstring)
EXPECTED = {
    "A100-SXM-80GB": "library_p2p",   # NCCL / custom all-reduce over NVLink3
    "H100-SXM": "library_p2p",        # NVLink4
    "B200": "library_p2p",            # NVLink5
    "MI300X": "library_p2p",          # RCCL / custom all-reduce over Infinity Fabric
    "TPU-v4": "compiled",             # XLA collectives over ICI
    "TPU-v5e": "compiled",
    "Groq-LPU": "compiled",           # software-scheduled chip-to-chip fabric
    "Gaudi2": "library_rdma",         # HCCL over 24 x 100 GbE RoCE, although its MMEs are graph-compiled
}


@pytest.mark.parametrize("chip,expected", sorted(EXPECTED.items()))
def test_catalog_chips_have_the_collective_class_of_what_runs_them(chip, expected):
    assert _class_name(_hw(chip)) == [expected]


@pytest.fixture(scope="module")
def random_hw() -> HwView:
    return HwView.from_arrays(DesignArrays.from_columns(random_designs(3000, 7), TECH))


def test_the_floor_is_paid_by_library_collectives_only(random_hw):
    """Raising the stack's floor by 10 us adds exactly 10 us to a library-run all-reduce and nothing to a
    compiled one, on every random design of the full space (both classes drawn)."""
    hw = random_hw
    cal = load_calibration("generic")
    _, lib, _ = _collective_class(hw)
    assert lib.any() and (~lib).any()
    size, g = np.array([2048.0]), np.array([8.0])
    t0 = collective_time("allreduce", size, g, hw, cal)[:, 0]
    t1 = collective_time("allreduce", size, g, hw, cal.model_copy(update={"collective_floor_us": cal.collective_floor_us + 10.0}))[:, 0]
    assert np.allclose(t1 - t0, np.where(lib, 10e-6, 0.0), rtol=0, atol=1e-12)


@pytest.mark.parametrize("stack", ["tuned", "generic"])   # one-shot and ring all-reduces
@pytest.mark.parametrize("kind", ["allreduce", "allgather", "alltoall"])
def test_a_larger_group_is_never_faster(random_hw, stack, kind):
    """Per design and collective, the time never falls as the group grows (2 -> 256 chips), in every class and
    topology: more chips never make the same per-chip payload cheaper to combine. (A sendrecv is always a
    pair, group 2: dse.workloads.ops.OpBuilder.sendrecv.)"""
    cal = load_calibration(stack)
    groups = np.array([2.0, 4.0, 8.0, 16.0, 64.0, 256.0])
    for size in (8.0, 16384.0, 64.0 * 2**20):
        t = collective_time(kind, np.full(groups.shape, size), groups, random_hw, cal)
        assert (np.diff(t, axis=1) >= -1e-15).all(), (kind, size)


def test_rdma_library_is_not_one_shot_and_compiled_has_no_floor():
    """By hand on Gaudi 2 (RDMA) and TPU v5e (compiled, torus): Gaudi's 8-chip all-reduce pays 14 ring steps of
    its port latency + the floor even under a one-shot stack; TPU's pays its torus steps only (one ring phase per dimension)."""
    cal = load_calibration("tuned")
    size, g = np.array([16384.0]), np.array([8.0])
    gaudi, tpu = _hw("Gaudi2"), _hw("TPU-v5e")
    t_bw, t_lat = collective_time("allreduce", size, g, gaudi, cal, split=True)
    assert t_lat[0, 0] == pytest.approx(14 * gaudi.link_latency_s[0] + cal.collective_floor_us * 1e-6, rel=1e-12)
    assert t_bw[0, 0] == pytest.approx(2 * 7 / 8 * 16384 / (gaudi.link_bw[0] * cal.link_eff), rel=1e-12)
    _, t_lat = collective_time("allreduce", size, g, tpu, cal, split=True)
    # a v5e 8-chip slice is a 4 x 2 grid: 2(4 - 1) + 2(2 - 1) = 8 steps
    assert t_lat[0, 0] == pytest.approx(8 * tpu.link_latency_s[0], rel=1e-12)


def test_torus_steps_by_hand():
    """One ring phase per dimension of an a x b grid: 2 chips are 2 x 1 (the ring's 2 all-reduce steps),
    8 are 4 x 2 (6 + 2), 16 are 4 x 4 (6 + 6); a point-to-point send is one hop on any group."""
    from dse.model.perf import _torus_steps

    g = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 64.0])
    assert _torus_steps("allreduce", g).tolist() == [0.0, 2.0, 4.0, 8.0, 12.0, 28.0]
    assert _torus_steps("allgather", g).tolist() == [0.0, 1.0, 2.0, 4.0, 6.0, 14.0]
    assert _torus_steps("alltoall", g).tolist() == [0.0, 1.0, 2.0, 4.0, 6.0, 14.0]
    assert _torus_steps("sendrecv", g).tolist() == [1.0] * 6
    # never more steps than the ring over the same chips, never fewer as the group grows
    many = np.arange(1.0, 300.0)
    for kind, ring in (("allreduce", 2 * (many - 1)), ("allgather", many - 1)):
        t = _torus_steps(kind, many)
        assert (t <= ring + 1e-12).all() and (np.diff(t) >= 0).all()
