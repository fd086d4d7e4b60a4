"""The software stack as a user choice: `dse software` lists the calibration classes, a study's `software:`
runs every trial under one of them (and a sweep entry may override it), a wrong name is a clear error."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from dse.cli import app
from dse.errors import ConfigError, DseUserError
from dse.evaluate import evaluate
from dse.model.arrays import DesignArrays
from dse.model.calibration import Calibration, calibration_classes, default_class
from dse.runs.reader import run_meta
from dse.study.evaluator import ModelEvaluator
from dse.study.export import export
from dse.study.runner import StudyRunner
from dse.study.spec import load_study, sub_studies

from _spaces import study_body, write_study

runner = CliRunner()


def test_software_lists_every_class_and_constant_of_the_calibration_file():
    res = runner.invoke(app, ["software", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["default"] == default_class()
    assert out["classes"] == {k: c.model_dump(mode="json") for k, c in calibration_classes().items()}
    res = runner.invoke(app, ["software"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for k in calibration_classes():
        assert k in res.output
    for field in Calibration.model_fields:
        if field != "description":
            assert field in res.output
    res = runner.invoke(app, ["software", "tunned"])
    assert isinstance(res.exception, DseUserError)  # `dse` maps it to one line and exit status 2
    assert "unknown software stack 'tunned' (did you mean 'tuned'?" in str(res.exception)


def test_software_option_help_names_every_class():
    res = runner.invoke(app, ["roofline", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert all(k in res.output for k in calibration_classes()) and "dse software" in res.output


def test_study_software_runs_every_trial_under_that_stack(tmp_path):
    other = "generic"  # eager: unfused epilogues, its own efficiencies (tuned and graph agree on statically
    # scheduled designs, which pay no per-kernel launch)
    study = load_study(write_study(tmp_path, study_body("sw", software=other, budget={"trials": 32}, seed=3,
                                                        execution={"backend": "serial"})))
    assert study.spec.software == other
    ev = ModelEvaluator.for_study(study)
    _, cols = study.space.grid_shard(0, 24)
    got = ev(cols)
    arr = DesignArrays.from_columns(cols, ev.tech())
    want = evaluate(arr, ev.mix(), ev.tech(), cal=other)
    default = evaluate(arr, ev.mix(), ev.tech())
    tpot = "local_llm.tpot_ms"
    ok = np.isfinite(want[tpot])
    assert ok.any()
    np.testing.assert_array_equal(got[tpot][ok], want[tpot][ok])
    assert not np.allclose(got[tpot][ok], default[tpot][ok])  # the stack changes the answer

    # end to end: run.json names the stack, stored values are that stack's
    res = StudyRunner(study, tmp_path / "run").run()
    assert run_meta(res.run_dir).software == other
    df = pl.read_parquet(res.run_dir / "results.parquet").filter(pl.col("feasible"))
    knobs = [k for k in study.space.names if k in df.columns]
    cols = {k: df[k].to_numpy() for k in knobs}
    again = ev(cols)
    np.testing.assert_allclose(df[tpot].to_numpy(), again[tpot], rtol=1e-12)
    # exported designs say which stack their metrics are from (`dse evaluate --software` repeats them)
    files = export(res.run_dir, "pareto", "yaml", tmp_path / "designs")
    assert files and all(f"--software {other}" in f.read_text().splitlines()[0] for f in files)


def test_study_software_is_part_of_the_fingerprint_and_absent_keeps_old_ones(tmp_path):
    base = load_study(write_study(tmp_path, study_body("fp", budget={"trials": 16})))
    named = load_study(write_study(tmp_path, study_body("fp", budget={"trials": 16}, software="generic")))
    assert base.spec.software is None
    assert base.fingerprint() != named.fingerprint()
    # a run folder of one stack refuses the other (the stored trials would mix two models)
    StudyRunner(load_study(write_study(tmp_path, study_body("fp", budget={"trials": 16}, seed=1,
                                                            execution={"backend": "serial"}))),
                tmp_path / "run").run()
    with pytest.raises(DseUserError, match="different study definition"):
        StudyRunner(load_study(write_study(tmp_path, study_body("fp", budget={"trials": 16}, seed=1,
                                                                software="generic",
                                                                execution={"backend": "serial"}))),
                    tmp_path / "run").run()


def test_unknown_software_is_a_config_error_naming_file_line_and_the_fix(tmp_path):
    path = write_study(tmp_path, study_body("bad", software="tunned"))
    with pytest.raises(ConfigError) as ei:
        load_study(path)
    msg = str(ei.value)
    assert "bad.yaml" in msg and "software" in msg and "did you mean 'tuned'" in msg and "dse software" in msg
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t.startswith("software:"))
    assert f":{line}:" in msg


def test_sweep_entry_may_override_the_software_stack(tmp_path):
    body = study_body("sw", budget={"trials": 16}, software="tuned",
                      sweep=[{"name": "trt"}, {"name": "vllm", "software": "generic"}])
    subs = sub_studies(load_study(write_study(tmp_path, body)))
    assert [s.spec.software for s in subs] == ["tuned", "generic"]
    assert subs[0].fingerprint() != subs[1].fingerprint()
    bad = study_body("sw", budget={"trials": 16}, sweep=[{"name": "x", "software": "sglang"}])
    with pytest.raises(ConfigError, match="unknown software stack 'sglang'"):
        load_study(write_study(tmp_path, bad))
