"""The public Python API (dse/__init__.py, dse/api.py) and its runnable example."""

from __future__ import annotations

import doctest
import subprocess
import sys
from pathlib import Path

import pytest

import dse
import dse.api

REPO = Path(__file__).resolve().parents[1]


def test_import_is_lazy_and_exports_resolve():
    code = ("import sys, dse; heavy = [m for m in ('optuna', 'ray', 'polars', 'altair') if m in sys.modules];"
            "assert not heavy, heavy; [getattr(dse, n) for n in dse.__all__]")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    with pytest.raises(AttributeError):
        dse.no_such_name  # noqa: B018


def test_api_doctests():
    assert doctest.testmod(dse.api).failed == 0


def test_evaluate_design_equals_the_vectorized_call_and_the_catalog_name():
    one = dse.evaluate_design("H100-SXM", scenario="local_llm")
    many = dse.evaluate_designs([dse.load_design("H100-SXM"), "A100-SXM-80GB"], scenario="local_llm")
    assert one["local_llm.tpot_ms"] == pytest.approx(float(many["local_llm.tpot_ms"][0]), rel=1e-12)
    # the A100 has less HBM bandwidth than the H100: batch-1 decode is slower on it
    assert many["local_llm.tpot_ms"][1] > many["local_llm.tpot_ms"][0] > 0


def test_mix_and_scenario_together_is_a_user_error():
    with pytest.raises(dse.DseUserError):
        dse.evaluate_design("H100-SXM", mix="balanced", scenario="local_llm")


def test_example_script_runs(tmp_path):
    res = subprocess.run([sys.executable, str(REPO / "examples" / "python_api.py"), str(tmp_path)],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "designs on the front" in res.stdout and "objective maximize mix.throughput" in res.stdout
    assert (tmp_path / "quickstart" / "results.parquet").exists()
