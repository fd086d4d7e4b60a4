"""The model process reuses, evaluates and scores whole generations (`StudyRunner._child_work`, issue 15): the run's
process only reads each generation's scores. The run's results, journal and counts are those of the in-process run,
the run's process scores nothing, and a study error found while scoring in the model process stops the run as it
does in-process."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import polars as pl
import pytest

from dse.errors import DseUserError
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from _spaces import study_file

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the model process forks (Linux)")


@pytest.fixture(autouse=True)
def _child_work_mode(monkeypatch):
    """These tests are of the model process that scores (`_child_work`), not of the one that evaluates the
    generations in flight together (`runner.MODEL_PROCESS_PAIRS`, tests/test_loop10_pairs.py)."""
    monkeypatch.setattr("dse.study.runner.MODEL_PROCESS_PAIRS", False)


def _study(tmp_path: Path, **over) -> Path:
    return study_file(tmp_path, "c", **{"sampler": {"kind": "nsga2", "population_size": 12},
                                        "budget": {"trials": 120}, "seed": 3, **over})


def _run(cfg: Path, out: Path, monkeypatch, how: str) -> StudyRunner:
    monkeypatch.setenv("DSE_MODEL_PROCESS", how)
    runner = StudyRunner(load_study(cfg), out)
    runner.run()
    return runner


def _journal(path: Path) -> list[dict]:
    """The journal's records without what differs between two runs of the same study (worker ids, times, folder)."""
    out = []
    for line in path.read_text().splitlines():
        o = json.loads(line)
        for k in ("worker_id", "datetime_start", "datetime_complete"):
            o.pop(k, None)
        if "dse:run_dir" in o.get("user_attr", {}):
            continue
        out.append(o)
    return out


def test_scored_in_the_model_process_equals_the_in_process_run(tmp_path, monkeypatch):
    cfg = _study(tmp_path)
    ref = _run(cfg, tmp_path / "ref", monkeypatch, "never")
    scored_here: list[int] = []  # appended to by the run's process only (the model process has its own copy)
    score = StudyRunner.score

    def spy(self, *args, **kwargs):
        scored_here.append(os.getpid())
        return score(self, *args, **kwargs)

    monkeypatch.setattr(StudyRunner, "score", spy)
    par = _run(cfg, tmp_path / "par", monkeypatch, "always")
    assert par.model_process is not None and par.model_process.calls > 0
    assert scored_here == []  # every generation was scored in the model process
    drop = ["datetime_start", "datetime_complete"]
    a = pl.read_parquet(tmp_path / "ref" / "results.parquet").drop(drop)
    b = pl.read_parquet(tmp_path / "par" / "results.parquet").drop(drop)
    assert a.equals(b)
    assert _journal(tmp_path / "ref" / "journal.log") == _journal(tmp_path / "par" / "journal.log")
    s_ref = json.loads((tmp_path / "ref" / "summary.json").read_text())
    s_par = json.loads((tmp_path / "par" / "summary.json").read_text())
    for k in ("designs_evaluated", "cache_hits", "trials"):  # the model process counts the designs it evaluated
        assert s_par[k] == s_ref[k]
    assert ref.evaluated == par.evaluated > 0


def test_a_study_error_while_scoring_in_the_model_process_stops_the_run(tmp_path, monkeypatch):
    parent = os.getpid()
    score = StudyRunner.score

    def fails_in_child(self, *args, **kwargs):
        if os.getpid() != parent:
            raise DseUserError("constraint `x` cannot be evaluated: broken")
        return score(self, *args, **kwargs)

    monkeypatch.setattr(StudyRunner, "score", fails_in_child)
    with pytest.raises(DseUserError, match="constraint `x` cannot be evaluated"):
        _run(_study(tmp_path), tmp_path / "run", monkeypatch, "always")
