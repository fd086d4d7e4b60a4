"""In-process, the array NSGA-II's two generations evaluated together are stored apart: the first one's part is
written before the sampler observes it and breeds (so that its flush to disk overlaps that work, not the next
part's write), the second's after; the stored trials are those of a run that evaluates each generation alone."""

from __future__ import annotations

import polars as pl

from dse.runs.writer import PartStore
from dse.study import runner as runner_mod
from dse.study.runner import StudyRunner
from dse.study.samplers import ArrayNSGAII
from dse.study.spec import load_study
from _spaces import study_file


def test_first_of_two_generations_evaluated_together_is_stored_before_it_is_observed(tmp_path, monkeypatch):
    cfg = study_file(tmp_path, "o", sampler={"kind": "nsga2", "population_size": 10}, budget={"trials": 80}, seed=5)
    monkeypatch.setenv("DSE_MODEL_PROCESS", "never")
    stored_at_observe: list[bool] = []
    real_observe = ArrayNSGAII.observe
    parts_dir = tmp_path / "together" / "parts"

    def observe(self, X, F, cv):
        stored_at_observe.append(len(PartStore(parts_dir.parent, create=False).indices()) > len(stored_at_observe))
        return real_observe(self, X, F, cv)

    monkeypatch.setattr(ArrayNSGAII, "observe", observe)
    StudyRunner(load_study(cfg), tmp_path / "together").run()
    assert stored_at_observe == [True, False] * 4  # generations 0, 2, 4, 6 stored first

    # each generation evaluated alone (no joint model call): the same trials, stored after each observation
    monkeypatch.setattr(runner_mod, "is_pure", lambda ev: False)
    parts_dir = tmp_path / "alone" / "parts"
    stored_at_observe.clear()
    StudyRunner(load_study(cfg), tmp_path / "alone").run()
    assert stored_at_observe == [False] * 8
    got = {how: pl.read_parquet(tmp_path / how / "results.parquet").drop("datetime_start", "datetime_complete")
           for how in ("together", "alone")}
    assert got["together"].equals(got["alone"])
