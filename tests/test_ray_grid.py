"""Grids stream: each shard is scored and stored where it runs; the driver keeps only a digest per shard and
streams results.parquet from the parts. The outcome must be what the in-memory `finalize` makes of the same
parts (same rows, same front, same counts and hypervolume), on Ray and in-process, and after a resume."""

from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest

from dse.runs.reader import run_meta
from dse.runs.writer import finalize
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from _spaces import study_file

SUMMARY_KEYS = ("trials", "trials_complete", "trials_failed", "feasible", "front_size", "reference_point")


def _grid(tmp_path, name: str, backend: str, shard_size: int = 37):
    return study_file(tmp_path, name=name, sampler={"kind": "grid", "points": 3, "shard_size": shard_size},
                      execution={"backend": backend, "inline_below": 0})


def _in_memory(run, tmp_path):
    """The same parts finalized the in-memory way (`dse.runs.writer.finalize`) in a copy of the folder."""
    copy = tmp_path / f"copy-{run.name}"
    shutil.copytree(run, copy)
    s = finalize(copy, run_meta(copy), wall_time_s=1.0, trials_this_run=0)
    return pl.read_parquet(copy / "results.parquet"), s


def _same_as_in_memory(run, summary, tmp_path):
    df = pl.read_parquet(run / "results.parquet")
    ref, s = _in_memory(run, tmp_path)
    assert df["trial"].to_list() == sorted(df["trial"].to_list())
    assert df.select(ref.columns).equals(ref)
    assert df["pareto"].sum() > 0
    assert {k: summary[k] for k in SUMMARY_KEYS} == {k: s[k] for k in SUMMARY_KEYS}
    assert summary["hypervolume"] == pytest.approx(s["hypervolume"], rel=1e-12)
    for m, b in s["best"].items():  # the same best value (the row may be another with that value)
        assert summary["best"][m]["value"] == b["value"]
    assert pl.read_parquet(run / "pareto.parquet").height == summary["front_size"]
    return df


def test_grid_in_process_streams_what_finalize_makes_of_its_parts(tmp_path):
    st = load_study(_grid(tmp_path, "g", "serial"))
    res = StudyRunner(st, tmp_path / "runs" / "g").run()
    assert res.summary["grid"]["shards"] > 3 and res.summary["executor"] == "serial"
    _same_as_in_memory(tmp_path / "runs" / "g", res.summary, tmp_path)


def test_resumed_grid_equals_an_uninterrupted_one(tmp_path):
    st = load_study(_grid(tmp_path, "g", "serial"))
    full = StudyRunner(st, tmp_path / "a" / "g").run()
    parts = sorted((tmp_path / "a" / "g" / "parts").glob("part-*.parquet"))
    (tmp_path / "b").mkdir()
    shutil.copytree(tmp_path / "a" / "g", tmp_path / "b" / "g")
    for p in sorted((tmp_path / "b" / "g" / "parts").glob("part-*.parquet"))[len(parts) // 2:]:
        p.unlink()  # as if killed half-way
    (tmp_path / "b" / "g" / "results.parquet").unlink()
    res = StudyRunner(load_study(_grid(tmp_path, "g", "serial")), tmp_path / "b" / "g").run()
    assert res.summary["trials_this_run"] < res.summary["trials"] == full.summary["trials"]
    a = pl.read_parquet(tmp_path / "a" / "g" / "results.parquet")
    b = _same_as_in_memory(tmp_path / "b" / "g", res.summary, tmp_path)
    assert a.drop("datetime_start", "datetime_complete", strict=False).equals(
        b.drop("datetime_start", "datetime_complete", strict=False))
    assert {k: res.summary[k] for k in SUMMARY_KEYS} == {k: full.summary[k] for k in SUMMARY_KEYS}


@pytest.mark.ray
def test_grid_on_ray_equals_the_serial_grid(tmp_path, ray_session):
    ray_res = StudyRunner(load_study(_grid(tmp_path, "g", "ray")), tmp_path / "ray" / "g").run()
    assert ray_res.summary["executor"] == "ray" and ray_res.summary["ray_tasks"] >= ray_res.summary["grid"]["shards"]
    ser = StudyRunner(load_study(_grid(tmp_path, "g", "serial")), tmp_path / "ser" / "g").run()
    a = _same_as_in_memory(tmp_path / "ray" / "g", ray_res.summary, tmp_path)
    b = pl.read_parquet(tmp_path / "ser" / "g" / "results.parquet")
    assert a.equals(b)
    assert ray_res.summary["hypervolume"] == ser.summary["hypervolume"]


def test_shard_digest_keeps_front_and_objective_ranges():
    from dse.pareto import nondominated_mask
    from dse.runs.front import derive_reference
    from dse.study.grid import _digest

    rng = np.random.default_rng(3)
    Y = rng.random((500, 3))
    feas = rng.random(500) < 0.7
    sc = {"Y": Y, "feasible": feas, "failed": np.zeros(500, dtype=bool)}
    d = _digest(4, np.arange(1000, 1500), sc, [False, True, False])
    F = Y[feas]
    assert d["n"] == 500 and d["feasible"] == feas.sum()
    front = {tuple(r) for r in F[nondominated_mask(F, [False, True, False])]}
    assert front <= {tuple(r) for r in d["Y"]}
    assert np.array_equal(derive_reference(d["Y"], [False, True, False]), derive_reference(F, [False, True, False]))
    assert set(d["trials"]) <= set(np.arange(1000, 1500)[feas])
