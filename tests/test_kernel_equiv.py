"""The compiled path of `perf.step_times` (dse/model/step_kernel.py, numba) gives the numpy path's numbers.

Both paths evaluate the same expressions in the same order, so they agree to the bit on the model's
default calibration (checked: 0 of ~600k instances differ); the tests allow 1e-12 relative (a libm `pow`
or `log2` may round differently from numpy's vectorised one for a non-square knee exponent). The whole
`evaluate` is compared on the catalog × the built-in mixes and on 2,000 random designs of the speed
benchmark, and `step_times` alone under calibrations that switch every branch on (host launches, no
epilogue fusion, ring all-reduce, overlap of collectives, a knee exponent other than 2).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dse.catalog import list_catalog, load_catalog_design
from dse.evaluate import evaluate
from dse.model import perf
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology
from dse.workloads.scenarios import load_mix

from _designs import random_designs  # noqa: E402
from _kernels import kernel_runner, needs_numba  # noqa: E402
from _steps import extended_mix_tables  # noqa: E402

RTOL = 1e-12


@pytest.fixture
def kernel(monkeypatch):
    """Run a function under DSE_KERNEL=mode (the path chosen afresh)."""
    yield kernel_runner(monkeypatch)
    perf.reset_kernel()


def _same(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys()
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        if x.dtype.kind in "fiub":
            np.testing.assert_allclose(y.astype(float), x.astype(float), rtol=RTOL, atol=0, equal_nan=True,
                                       err_msg=f"{what}: {k}")
        else:
            assert (x == y).all(), f"{what}: {k}"


@needs_numba
@pytest.mark.slow
def test_evaluate_compiled_equals_numpy_on_catalog_and_random_designs(kernel):
    tech = default_technology()
    cat = [load_catalog_design(n) for n in list_catalog()]
    for mix in ("balanced", "local", "datacenter"):
        arr = DesignArrays.from_designs(cat, tech)
        _same(kernel("numpy", evaluate, arr, load_mix(mix), tech),
              kernel("numba", evaluate, arr, load_mix(mix), tech), f"catalog/{mix}")
    cols = random_designs(2000, 7)
    arr = DesignArrays.from_columns(cols, tech)
    ref = kernel("numpy", evaluate, arr, load_mix("balanced"), tech)
    assert 0.1 < ref["feasible"].mean() < 0.9  # feasible and infeasible designs both occur
    _same(ref, kernel("numba", evaluate, arr, load_mix("balanced"), tech), "random designs")


def _instances(n_designs: int):
    """Operator tables of the extended mix's plans, random designs and random (step, design, residency)
    instances (fractional residencies, resident bytes, energy wanted on some)."""
    from dse.evaluate.table import design_metrics

    tech = default_technology()
    hw, _, _, _ = design_metrics(DesignArrays.from_columns(random_designs(n_designs, 3), tech))
    tables = extended_mix_tables(hw.num_chips)
    rng = np.random.default_rng(4)
    m = 4000
    step_of, design_of = rng.integers(0, len(tables), m), rng.integers(0, hw.n, m)
    wres = np.where(rng.random(m) < 0.5, rng.integers(0, 2, m).astype(float), rng.random(m))
    kres, res = rng.random(m), rng.uniform(0, 2e8, m) * (rng.random(m) < 0.3)
    energy = rng.random(m) < 0.7
    return tables, hw, (step_of, design_of, wres, kres, res, energy)


@needs_numba
@pytest.mark.parametrize("cls,update", [
    ("tuned", {}), ("generic", {}), ("kernel", {}), ("graph", {}),
    ("tuned", {"comm_overlap": 0.6, "knee_p": 3.0, "allreduce": "ring"}),
    ("generic", {"comm_overlap": 1.0, "knee_p": 1.0, "launch_us": 40.0, "fuse_epilogues": True}),
])
def test_step_times_compiled_equals_numpy_under_every_branch(kernel, cls, update):
    from dse.model.calibration import load_calibration

    cal = load_calibration(cls).model_copy(update=update)
    tables, hw, (step_of, design_of, wres, kres, res, energy) = _instances(300)
    assert {"allreduce", "alltoall"} <= {k for t in tables for k in np.asarray(t.kind).astype(str)}
    args = (tables, step_of, design_of, hw, cal, wres, kres, res, energy)
    t0, e0 = kernel("numpy", perf.step_times, *args)
    t1, e1 = kernel("numba", perf.step_times, *args)
    np.testing.assert_allclose(t1, t0, rtol=RTOL, atol=0)
    np.testing.assert_array_equal(np.isnan(e1), ~energy)
    np.testing.assert_allclose(e1[energy], e0[energy], rtol=RTOL, atol=0)
    assert (t0 > 0).all()


def test_auto_mode_stays_on_numpy_for_a_small_run_and_a_bad_value_is_an_error(kernel, monkeypatch):
    tech = default_technology()
    arr = DesignArrays.from_designs([load_catalog_design("H100-SXM")], tech)
    kernel("auto", evaluate, arr, load_mix("balanced"), tech)
    monkeypatch.setenv(perf.KERNEL_ENV, "auto")
    assert perf.kernel_mode() == "numpy"  # far below KERNEL_AUTO_ELEMENTS
    monkeypatch.setenv(perf.KERNEL_ENV, "fast")
    with pytest.raises(ValueError, match="DSE_KERNEL"):
        perf.compiled_kernel()


def test_importing_dse_and_the_cli_does_not_import_numba():
    code = "import sys, dse, dse.cli, dse.model.perf, dse.evaluate; assert 'numba' not in sys.modules"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr


@needs_numba
def test_the_kernel_cache_is_stamped_ready_by_source_content_and_numba_version(kernel):
    """Auto mode uses the kernel once `step_kernel.warm` stamped numba's cache with the source's content and
    numba's version (a checkout that only touches the file keeps it; another stamp is not ready)."""
    kernel("numba", perf.compiled_kernel)  # compiles or loads the kernel, and stamps the cache
    ready = Path(perf.__file__).parent / perf.KERNEL_READY_FILE
    stamp = ready.read_text()
    assert stamp == perf.kernel_cache_stamp() and "numba" in stamp
    perf.reset_kernel()
    assert perf.kernel_cache_ready()
    try:
        ready.write_text("an older source")
        perf.reset_kernel()
        assert not perf.kernel_cache_ready()
    finally:
        ready.write_text(stamp)


def test_the_stamp_covers_the_globals_the_kernel_compiles_in(monkeypatch):
    """step_kernel reads knobs.TOPOLOGY_CODE as a global, which numba freezes into its cache: another coding of
    the topologies is another stamp (so the stale cache is purged), the same coding the same stamp."""
    from dse.model import kernel as K, knobs

    before = K.kernel_cache_stamp()
    monkeypatch.setattr(knobs, "TOPOLOGY_CODE", dict(knobs.TOPOLOGY_CODE))
    assert K.kernel_cache_stamp() == before
    monkeypatch.setattr(knobs, "TOPOLOGY_CODE", {k: v + 1 for k, v in knobs.TOPOLOGY_CODE.items()})
    assert K.kernel_cache_stamp() != before


def test_a_changed_kernel_source_purges_every_compiled_modules_cache(tmp_path):
    """numba checks only a cached function's own file: when any kernel source changed since the stamped compile,
    the cache of all compiled modules goes (cnn_kernel's code would keep an older step_kernel.time_batch); with the
    current stamp nothing is touched, nor are other files."""
    from dse.model import kernel as K

    cache = tmp_path / "__pycache__"
    cache.mkdir()
    names = ["step_kernel.time_batch-500.py311.nbi", "step_kernel.time_batch-500.py311.1.nbc",
             "cnn_kernel.map_cnn_kernel-21.py311.nbi", "area_kernel.io_costs-79.py311.2.nbc"]
    other = ["mapping.cpython-311.pyc", "step_kernel.cpython-311.pyc"]
    for f in names + other:
        (cache / f).write_text("x")
    (tmp_path / K.KERNEL_READY_FILE).write_text(K.kernel_cache_stamp())
    ready = (tmp_path / K.KERNEL_READY_FILE).name
    assert K.purge_stale_cache(tmp_path) == 0 and len(list(cache.iterdir())) == 7
    (tmp_path / K.KERNEL_READY_FILE).write_text("an older source")
    assert K.purge_stale_cache(tmp_path) == 4
    assert sorted(p.name for p in cache.iterdir()) == sorted(other + [ready])


@needs_numba
def test_spare_search_compiled_equals_numpy_under_harsh_and_mild_defects(kernel):
    """`fab.best_spares`' compiled scan (`step_kernel.spare_scan`, with its early stops) picks the same spares,
    die, yield and cost as the numpy scan, at the default defect densities and at 5x / 0.2x of them with a
    more clustered yield model (more spares pay, or none do), on random designs (SIMT ones carry spares)."""
    from dse.model.area import chip_area

    tech = default_technology()
    base = DesignArrays.from_columns(random_designs(1500, 11), tech)
    for scale, alpha in ((1.0, 1.0), (5.0, 0.5), (0.2, 2.0)):
        arr = base.take(np.arange(base.n))
        arr.defect_density_per_cm2 = arr.defect_density_per_cm2 * scale
        arr.yield_alpha = arr.yield_alpha * alpha
        ref, got = (vars(kernel(mode, chip_area, arr)) for mode in ("numpy", "numba"))
        assert (np.asarray(ref["spare_cores"]) > 0).any()
        _same(ref, got, f"chip_area at {scale}x defects")


@needs_numba
def test_knee_of_p2_in_one_division_gives_the_general_formulas_bits():
    """The compiled knee of p = 2 (`step_kernel._knee2`: the larger roof over itself is exactly 1, so one division)
    gives the bits of perf's numpy formula ((c/hi)^2 + (m/hi)^2)^(1/2) · hi wherever it says it holds, and it holds
    exactly where hi = max(c, m) is finite and at least 1e-300 (elsewhere the kernel takes the general formula):
    random roofs over 330 decades, equal ones, zeros, subnormals, inf and NaN."""
    from dse.model.step_kernel import _knee2
    rng = np.random.default_rng(15)
    a, b = 10 ** rng.uniform(-320, 10, 4000), 10 ** rng.uniform(-320, 10, 4000)
    near = a * (1 + rng.uniform(-1e-9, 1e-9, 4000))  # roofs a few ulps to a billionth apart
    edge = np.array([0.0, 1e-300, 1e-301, 5e-324, 1.0, 3.0, np.inf, np.nan, 2.0 ** 1000])
    c = np.concatenate([a, a, a, near, np.repeat(edge, len(edge))])
    m = np.concatenate([b, a, a / 3.0, a, np.tile(edge, len(edge))])
    c, m = np.concatenate([c, m]), np.concatenate([m, c])  # each pair both ways round
    hi = np.maximum(np.maximum(c, m), 1e-300)
    with np.errstate(all="ignore"):
        x, y = c / hi, m / hi  # (perf._busy_free's in-place steps)
        x **= 2.0
        y **= 2.0
        x += y
        x **= 0.5
        x *= hi
    got = np.array([_knee2(ci, mi) for ci, mi in zip(c, m)], dtype=object)
    roof, valid = got[:, 0].astype(float), got[:, 1].astype(bool)
    top = np.fmax(c, m)
    assert (valid == ((top >= 1e-300) & (top < np.inf) & ~np.isnan(c) & ~np.isnan(m))).all()
    assert valid.sum() > 8000
    assert (roof[valid].view(np.int64) == x[valid].view(np.int64)).all()
