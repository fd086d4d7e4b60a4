"""`finalize` writes results.parquet on a thread while it makes the fronts and the summary (issue 15: the run's
end waits less): summary.json, the last file, is written once results.parquet is in place, an error writing
results.parquet is raised and leaves no summary, and the files are those of the run's rows."""

from __future__ import annotations

import json
import time
from pathlib import Path

import polars as pl
import pytest

from dse.runs import writer
from dse.runs.layout import RunMeta
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from _spaces import study_file


def _run(tmp_path: Path) -> tuple[Path, RunMeta, pl.DataFrame]:
    run = tmp_path / "run"
    StudyRunner(load_study(study_file(tmp_path, budget={"trials": 48})), run).run()
    meta = RunMeta.model_validate_json((run / "run.json").read_text())
    return run, meta, pl.read_parquet(run / "results.parquet")


def test_summary_is_written_after_results_and_the_files_match_the_rows(tmp_path, monkeypatch):
    run, meta, before = _run(tmp_path)
    for f in ("results.parquet", "pareto.parquet", "summary.json"):
        (run / f).unlink()
    write = writer.atomic_write_parquet
    order: list[str] = []

    def slow_results(df, path):  # results.parquet takes longer than the rest of finalize
        if path.name == "results.parquet":
            order.append("results begun")
            time.sleep(0.3)
        write(df, path)
        order.append(path.name)

    write_json = writer.write_json

    def spy_json(path, obj):
        if Path(path).name == "summary.json":
            order.append("summary.json")
        write_json(path, obj)

    monkeypatch.setattr(writer, "atomic_write_parquet", slow_results)
    monkeypatch.setattr(writer, "write_json", spy_json)
    summary = writer.finalize(run, meta, wall_time_s=1.0, trials_this_run=48, parts=before.drop("pareto"))
    # the front written while results.parquet was (the study has no robust objectives: no nominal front), the
    # summary after both
    assert order == ["results begun", "pareto.parquet", "results.parquet", "summary.json"], order
    after = pl.read_parquet(run / "results.parquet")
    assert after.equals(before)
    assert pl.read_parquet(run / "pareto.parquet").equals(before.filter(pl.col("pareto")))
    assert json.loads((run / "summary.json").read_text()) == summary and summary["trials"] == 48


def test_an_error_writing_results_is_raised_and_leaves_no_summary(tmp_path, monkeypatch):
    run, meta, before = _run(tmp_path)
    (run / "summary.json").unlink()

    def full_disk(df, path):
        if path.name == "results.parquet":
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(writer, "atomic_write_parquet", full_disk)
    with pytest.raises(OSError, match="No space left"):
        writer.finalize(run, meta, wall_time_s=1.0, trials_this_run=48, parts=before.drop("pareto"))
    assert not (run / "summary.json").exists()
