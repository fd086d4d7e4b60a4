"""The shorter paths of an `evaluate` call's fixed cost give the longer ones' numbers to the bit: `perf.run_energy`'s
one gather against its loop over the fallbacks, `perf.collective_time`'s point-to-point send against the alpha-beta
sum with one step, the memory stream efficiencies kept per table, `power._cooled`'s reasons against numpy's string
passes, the per-design constants of the compiled kernels (one conversion) against their column writes, and of a
calibration and its inference phase (what the CNN mapping shares with the LLM scenarios')."""

from __future__ import annotations

import numpy as np
import pytest

from dse.model import perf, power, step_kernel, voltage
from dse.model.area import chip_area
from dse.model.arrays import DesignArrays
from dse.model.calibration import load_calibration
from dse.model.knobs import TOPOLOGY_CODE
from dse.model.technology import default_technology

from _designs import random_designs  # noqa: E402
from _kernels import assert_bit_equal  # noqa: E402

PRECISIONS = ("bf16", "fp16", "fp8", "int8", "int4", "fp4")


def _hw(n: int, seed: int) -> perf.HwView:
    arr = DesignArrays.from_columns(random_designs(n, seed), default_technology())
    return perf.HwView.from_arrays(arr, chip_area(arr))


def test_run_energy_gather_is_the_fallback_loop():
    """Random tables: some precisions missing from either side, peaks 0, NaN or negative, energies NaN or -0."""
    rng = np.random.default_rng(11)
    for _ in range(400):
        n = int(rng.integers(0, 30))
        epf = {p: rng.choice([0.1, 0.3, 1.7, np.nan, -0.0], n) * rng.random(n) for p in PRECISIONS if rng.random() < 0.85}
        peak = {p: rng.choice([0.0, 1e12, np.nan, -1.0, 5e14], n) for p in PRECISIONS if rng.random() < 0.85}
        got, want = perf.run_energy(epf, peak), perf._run_energy_loop(epf, peak)
        assert list(got) == list(want)
        assert_bit_equal(got, want, "run_energy")


def test_run_energy_by_hand():
    """A chip with bf16 and int8 only: fp8 runs on bf16, int4 on int8, fp4 on bf16 (fp8 absent)."""
    one = lambda x: np.array([x])  # noqa: E731
    epf = {"bf16": one(1.0), "fp16": one(0.9), "fp8": one(0.5), "int8": one(0.3), "int4": one(0.2), "fp4": one(0.1)}
    peak = {"bf16": one(1e15), "fp16": one(0.0), "fp8": one(0.0), "int8": one(2e15), "int4": one(0.0), "fp4": one(0.0)}
    got = {p: float(v[0]) for p, v in perf.run_energy(epf, peak).items()}
    assert got == {"bf16": 1.0, "fp16": 1.0, "fp8": 1.0, "int8": 0.3, "int4": 0.3, "fp4": 1.0}


def _sendrecv_oracle(nbytes, group, hw, cal, split=False):
    """The alpha-beta sum of `collective_time` for a point-to-point send, written out with its one step per
    topology and class (the general path before the send had a path of its own)."""
    g = np.maximum(np.asarray(group, float), 1.0)
    s = np.asarray(nbytes, float)
    bw = np.maximum(hw.link_bw[:, None] * cal.link_eff, 1.0)
    lat = hw.link_latency_s[:, None]
    topo = hw.topology[:, None]
    ones = np.ones_like(g)
    lib = (~np.asarray(hw.dataflow, bool) | np.asarray(hw.link_rdma, bool))[:, None]
    steps = np.where(topo == TOPOLOGY_CODE["ring"], ones,
                     np.where(topo == TOPOLOGY_CODE["torus2d"], ones, np.where(lib, ones, ones)))
    floor = np.where(lib, cal.collective_floor_us * 1e-6, 0.0)
    t_bw = np.where(g > 1, s / bw, 0.0)
    t_lat = np.where(g > 1, steps * lat + floor, 0.0)
    return (t_bw, t_lat) if split else t_bw + t_lat


@pytest.mark.parametrize("seed", [1, 2])
def test_sendrecv_is_the_one_step_sum(seed):
    hw, cal = _hw(300, seed), load_calibration(None)
    assert len(set(hw.topology.tolist())) == 3 and hw.link_rdma.any() and hw.dataflow.any() and not hw.dataflow.all()
    for nbytes, group in ((np.array([1e3, 2e6, 0.0]), np.full(3, 2.0)), (np.array([5e5]), np.array([1.0])),
                          (np.array([[1e6, 3e3], [0.0, 7e9]]), np.array([[2.0, 4.0], [1.0, 8.0]]))):
        if np.ndim(nbytes) == 2:  # a (rows, k) table of one design per row, as perf times a stack
            hw1 = hw.take(np.arange(2))
        else:
            hw1 = hw
        for split in (False, True):
            got = perf.collective_time("sendrecv", nbytes, group, hw1, cal, split=split)
            want = _sendrecv_oracle(nbytes, group, hw1, cal, split=split)
            got, want = (got, want) if split else ((got,), (want,))
            assert_bit_equal(dict(enumerate(got)), dict(enumerate(want)), "sendrecv")


def test_stream_efficiencies_follow_the_table():
    tech = default_technology()
    keys, vals = perf._stream_efficiencies(tech.memories)
    assert keys.tolist() == sorted(tech.memories)
    assert vals.tolist() == [float(tech.memories[k].stream_efficiency) for k in keys.tolist()]
    changed = {**tech.memories, "zz_mem": next(iter(tech.memories.values())).model_copy(update={"stream_efficiency": 0.5})}
    keys2, vals2 = perf._stream_efficiencies(changed)  # another table (a new entry): its own arrays
    assert keys2.tolist()[-1] == "zz_mem" and vals2[-1] == 0.5


def test_cooled_reasons_are_numpys_text():
    rng = np.random.default_rng(3)
    density = np.concatenate([rng.random(200) * 10.0 ** rng.integers(-4, 40, 200),
                              [np.nan, np.inf, -np.inf, -0.0, 0.005, 0.015, 2.675, 1e300]])
    arr = DesignArrays.from_columns(random_designs(len(density), 4), default_technology())
    limit = arr.tech.thermal.max_power_density_w_per_mm2
    got = power._cooled(arr, {"power_density_w_per_mm2": density, **{
        k: np.zeros(len(density)) for k in power.PowerBreakdown.__dataclass_fields__
        if k not in ("power_density_w_per_mm2", "feasible", "reason")}})
    bad = ~(density <= limit)
    want = np.full(len(density), "", object)
    want[bad] = np.char.add(np.char.add("power density ", np.char.mod("%.2f", density[bad])),
                            f" W/mm² > cooling limit {limit:g} W/mm²").astype(object)
    assert got.reason.tolist() == want.tolist()
    assert bad.sum() > 100


def test_design_constants_one_conversion_is_the_column_writes():
    """The numpy constants (`_constants_numpy`, the compiled pass's reference): one conversion of the columns, or
    column writes where a constant is a scalar."""
    hw, cal = _hw(200, 5), load_calibration(None)
    got = step_kernel._constants_numpy(hw, cal, perf.compute_peak, perf.sram_rate, perf.fill_time_s,
                                       perf._collective_class)
    assert got.flags.c_contiguous and got.dtype == np.float64 and got.shape == (hw.n, len(step_kernel._HW))

    # a constant given as a scalar (here the SRAM rate) takes the column writes: the other columns are the same
    scalar = lambda h: tuple(np.asarray(x) for x in perf._collective_class(h))  # noqa: E731
    table = step_kernel._constants_numpy(hw, cal, perf.compute_peak, lambda h, c: 2.5e12, perf.fill_time_s, scalar)
    assert (table[:, step_kernel._H["sram_bps"]] == 2.5e12).all()
    keep = [i for i, f in enumerate(step_kernel._HW) if f not in ("sram_bps", "sram_den")]
    assert_bit_equal({"t": table[:, keep]}, {"t": got[:, keep]}, "design constants")


def test_inference_phase_has_the_same_design_constants():
    """`compiled_tables`' `design_cal`: the CNN mapping takes the LLM calibration's cached constants."""
    hw, cal = _hw(120, 6), load_calibration(None)
    inf = cal.for_phase("inference")
    assert inf is not cal
    a = step_kernel._design_constants(hw, cal, perf.compute_peak, perf.sram_rate, perf.fill_time_s,
                                      perf._collective_class)
    b = step_kernel._design_constants(hw, inf, perf.compute_peak, perf.sram_rate, perf.fill_time_s,
                                      perf._collective_class)
    assert_bit_equal({"t": a}, {"t": b}, "phase")


def test_voltage_constants_kept_are_the_formula():
    g = lambda v: (v - voltage.THRESHOLD_FRACTION) ** voltage.ALPHA / v  # noqa: E731
    assert voltage._g1() == float(voltage._delay_inverse(np.float64(1.0))) == pytest.approx(g(1.0), rel=1e-15)
    assert voltage.max_clock_ratio() == float(voltage._delay_inverse(np.float64(voltage.MAX_FRACTION))
                                              / voltage._delay_inverse(np.float64(1.0)))


def _flag_oracle(valid, reason, bad, message):
    """`_Flags.flag` with numpy's object passes (before it joined the texts as lists)."""
    valid, reason = valid.copy(), reason.copy()
    if bad.any():
        idx = np.flatnonzero(bad)
        msgs = message[idx] if isinstance(message, np.ndarray) else np.full(len(idx), message, dtype=object)
        old = reason[idx]
        had = old != ""
        if had.any():
            msgs = np.where(had, old + "; " + msgs, msgs)
        reason[idx] = msgs
        valid[idx] = False
    return valid, reason


def test_flags_join_as_numpy_did():
    from dse.model.arrays import _Flags
    rng = np.random.default_rng(8)
    for _ in range(200):
        n = int(rng.integers(1, 40))
        reason = np.where(rng.random(n) < 0.4, "chip.cores must be > 0", "").astype(object)
        valid = rng.random(n) < 0.7
        bad = rng.random(n) < 0.4
        kind = rng.integers(0, 3)
        message = ("one text" if kind == 0 else
                   np.array([f"row {i}" for i in range(n)], dtype=object if kind == 1 else str))
        f = _Flags(n, valid, reason)
        f.flag(bad, message)
        v, r = _flag_oracle(np.array(valid), np.array(reason, object), bad, message)
        assert f.valid.tolist() == v.tolist() and f.reason.tolist() == r.tolist()
        assert all(type(x) is str for x in f.reason.tolist())


def test_harvested_yield_asked_again_is_the_same():
    """The last call's result comes back only for the same bits and mask: -0.0 against 0.0, NaN, another mask or
    one changed value are computed anew; and a caller may change what it got."""
    from dse.model import fab
    rng = np.random.default_rng(9)
    n = 40
    cols = [rng.random(n) * 400, rng.random(n) * 40000, rng.random(n) * 5000, rng.random(n) * 0.2, 1 + rng.random(n)]
    fresh = lambda *a, c: fab._harvested_yield(*a, c)  # noqa: E731
    for cont in (True, np.ones(n, bool), rng.random(n) < 0.5, False):
        first = fab.harvested_yield(*cols, continuous=cont)
        again = fab.harvested_yield(*[c.copy() for c in cols], continuous=cont)
        assert_bit_equal({"y": first}, {"y": again}, "memo")
        assert_bit_equal({"y": again}, {"y": fresh(*cols, c=cont)}, "computed")
        again[:] = -1.0  # the caller's own copy
        assert_bit_equal({"y": fab.harvested_yield(*cols, continuous=cont)}, {"y": first}, "kept")
    cols[3][:3] = [0.0, np.nan, 0.1]
    fab.harvested_yield(*cols, continuous=True)
    changed = [c.copy() for c in cols]
    changed[3][0] = -0.0
    changed[1][5] *= 1.0 + 1e-15
    assert_bit_equal({"y": fab.harvested_yield(*changed, continuous=True)},
                     {"y": fresh(*changed, c=True)}, "changed")
    mixed = rng.random(n) < 0.5
    fab.harvested_yield(*cols, continuous=np.ones(n, bool))
    assert_bit_equal({"y": fab.harvested_yield(*cols, continuous=mixed)}, {"y": fresh(*cols, c=mixed)}, "mask")
