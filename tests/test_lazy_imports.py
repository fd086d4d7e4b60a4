"""Heavy modules imported only where used: a study run that never needs scipy.special (no wafer-scale
yield, no SLO percentiles) does not pay its import (~0.2–0.5 s of `dse run`)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from dse._lazy import lazy_function


def test_model_and_serving_modules_do_not_import_scipy_special():
    code = ("import sys, dse.model.fab, dse.serving.analytic, dse.study.runner, dse.study.evaluator, dse.cli; "
            "print('scipy.special' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "False"


def test_lazy_function_is_the_function_it_names():
    from scipy.special import gammainc, ndtr

    a = np.array([0.5, 1.0, 2.5, 40.0, 1e6])
    x = np.array([0.1, 1.0, 3.0, 35.0, 1e6 + 5.0])
    assert np.array_equal(lazy_function("scipy.special", "gammainc")(a, x), gammainc(a, x))
    assert np.array_equal(lazy_function("scipy.special", "ndtr")(x - 2.0), ndtr(x - 2.0))
    assert lazy_function("scipy.special", "ndtr").__name__ == "ndtr"


def test_the_model_modules_call_scipy_where_they_need_it():
    from scipy.special import gammainc

    from dse.model import fab
    from dse.serving import analytic

    a, x = np.array([2.0, 3.0]), np.array([1.0, 4.0])
    assert np.array_equal(fab.gammainc(a, x), gammainc(a, x))
    assert np.array_equal(analytic.gammainc(a, x), gammainc(a, x))
    # the wafer-scale branch of the harvested yield goes through it
    y = fab.harvested_yield(50.0, 400.0, 200.0, 0.1, 2.0)
    assert 0.0 < float(y) <= 1.0
