"""Issue 17 on the study/run/export side: every config problem found before the first trial and before
anything is written (the corpus under tests/corpus/), a failed start never blocks the corrected rerun,
stale journal lock, transient evaluation faults retried (front equals an undisturbed run's), disk full,
`--out` of the wrong kind, export path traversal, negative selectors, the resolved mix in run.json."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import optuna
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from dse.cli import app  # every command registered (dse.cli.load_commands)
from dse.errors import DseUserError
from dse.runs.reader import load_run
from dse.runs.writer import PartStore
from dse.study.evaluator import ModelEvaluator
from dse.study.execution import TransientError
from dse.study.runner import TRANSIENT_MARK, StudyRunner
from dse.study.spec import load_study
from _spaces import study_file

CORPUS = Path(__file__).parent / "corpus"
# corpus studies that are config errors (each must fail before anything is written); the long sum is valid
BAD_STUDIES = sorted(p.name for p in CORPUS.glob("study_*.yaml") if p.name != "study_constraint_long_sum.yaml")


def _study_file(tmp_path: Path, name: str = "t", **over) -> Path:
    return study_file(tmp_path, name, **{"budget": {"trials": 48}, "seed": 5, **over})


def _results(run: Path) -> pl.DataFrame:
    return pl.read_parquet(run / "results.parquet").drop("datetime_start", "datetime_complete")


def _front(run: Path) -> list:
    df = pl.read_parquet(run / "pareto.parquet").sort("trial")
    return df.select("trial", "local_llm.tpot_ms", "chip_cost_usd").rows()


@pytest.mark.parametrize("name", BAD_STUDIES)
def test_corpus_study_is_an_exit_2_before_anything_is_written(tmp_path, name):
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["run", str(CORPUS / name), "--out", str(out), "--quiet"])
    assert res.exit_code in (1, 2) or isinstance(res.exception, DseUserError), res.output
    assert isinstance(res.exception, (DseUserError, SystemExit)), res.exception
    msg = str(res.exception) + res.output
    assert name in msg and "Traceback" not in msg
    assert not out.exists()  # nothing written


def test_long_sum_constraint_is_evaluated_not_swallowed(tmp_path):
    res = StudyRunner(load_study(CORPUS / "study_constraint_long_sum.yaml"), tmp_path / "r").run()
    assert res.summary["trials_failed"] == 0 and res.summary["feasible"] > 0


def test_text_metric_compared_with_a_number_names_the_constraint(tmp_path):
    f = _study_file(tmp_path, constraints=["chip.memory <= 5"])
    with pytest.raises(DseUserError, match=r"constraints\.0.*chip.memory"):
        StudyRunner(load_study(f), tmp_path / "runs" / "t").run()
    assert not (tmp_path / "runs").exists()


def test_scoring_error_stops_the_study_instead_of_every_trial_infeasible(tmp_path):
    runner = StudyRunner(load_study(_study_file(tmp_path)), tmp_path / "r")
    cols = {"chip.cores": np.array([8, 16])}
    metrics = {"feasible": np.ones(2, dtype=bool), "reason": np.array(["", ""], dtype=object),
               "local_llm.tpot_ms": np.ones(2), "chip_cost_usd": np.ones(2)}  # tdp_w missing: a study bug
    with pytest.raises(DseUserError, match="tdp_w <= 400"):
        runner.score(cols, [(slice(0, 2), metrics)], 2)


def test_failed_start_does_not_block_the_corrected_rerun(tmp_path):
    run = tmp_path / "runs" / "t"
    first = StudyRunner(load_study(_study_file(tmp_path, seed=1)), run)
    # a start that wrote its run.json and journal, then died before its first trial
    first.run_dir.mkdir(parents=True)
    from dse.study.rundir import prepare_run_dir, start_meta

    prepare_run_dir(first.study, run)
    start_meta(first.study, run, 48, str(run / "journal.log"))
    (run / "journal.log").write_text("")
    res = StudyRunner(load_study(_study_file(tmp_path, seed=2)), run).run()  # another definition: taken over
    assert res.summary["trials"] == 48
    assert json.loads((run / "run.json").read_text())["seed"] == 2
    with pytest.raises(DseUserError, match="different study definition"):  # with trials it stays refused
        StudyRunner(load_study(_study_file(tmp_path, seed=3)), run).run()


def test_refused_resume_names_what_changed_and_keeps_the_trials(tmp_path):
    """A run folder of another definition is refused with the fields that differ, stored vs now (the sampler key
    by key: a run started with nsga2's former default crossover, uniform, names it), and its trials are kept."""
    run = tmp_path / "runs" / "t"
    StudyRunner(load_study(_study_file(tmp_path, sampler={"kind": "nsga2", "crossover": "uniform"})), run).run()
    before = _results(run)
    with pytest.raises(DseUserError, match=r"sampler\.crossover: stored 'uniform', now 'sbx'; to continue") as e:
        StudyRunner(load_study(_study_file(tmp_path, sampler={"kind": "nsga2"})), run).run()
    assert "seed" not in str(e.value)  # only what changed
    with pytest.raises(DseUserError, match=r"seed: stored 5, now 6"):
        StudyRunner(load_study(_study_file(tmp_path, seed=6, sampler={"kind": "nsga2", "crossover": "uniform"})),
                    run).run()
    assert _results(run).equals(before)


def test_refused_resume_names_the_space_leaf_and_reads_an_older_run_json(tmp_path):
    """The refusal diffs the stored definition leaf by leaf (a knob's bound inside the space); a run.json written
    before it stored the definition is compared on the fields it recorded (seed), and the fingerprint of an
    unchanged study is the one stored, so it resumes."""
    from copy import deepcopy

    from _spaces import SPACE

    run = tmp_path / "runs" / "t"
    StudyRunner(load_study(_study_file(tmp_path)), run).run()
    meta = json.loads((run / "run.json").read_text())
    assert meta["definition"]["seed"] == 5 and meta["definition"]["space"]["params"]["chip.cores"]["high"] == 128
    wider = deepcopy(SPACE)
    wider["params"]["chip.cores"]["high"] = 256
    with pytest.raises(DseUserError, match=r"space\.params\.chip\.cores\.high: stored 128(\.0)?, now 256(\.0)?; to continue"):
        StudyRunner(load_study(_study_file(tmp_path, space=wider)), run).run()
    with pytest.raises(DseUserError, match=r"different study definition: uncertainty: stored None, now \{"):
        StudyRunner(load_study(_study_file(tmp_path, uncertainty={"samples": 4})), run).run()
    del meta["definition"]  # as written before 2026-12-02
    (run / "run.json").write_text(json.dumps(meta))
    with pytest.raises(DseUserError, match=r"different study definition: seed: stored 5, now 9; to continue"):
        StudyRunner(load_study(_study_file(tmp_path, seed=9)), run).run()
    assert load_study(_study_file(tmp_path)).fingerprint() == meta["fingerprint"]
    res = StudyRunner(load_study(_study_file(tmp_path, budget={"trials": 64})), run).run()
    assert res.summary["trials"] == 64


def test_stale_journal_lock_is_released(tmp_path, caplog):
    cfg = _study_file(tmp_path, budget={"trials": 16})
    run = tmp_path / "runs" / "t"
    StudyRunner(load_study(cfg), run).run()
    (run / "journal.log.lock").write_text("")  # left by a SIGKILL during an append
    with caplog.at_level("WARNING"):
        res = StudyRunner(load_study(cfg), run, trials=32).run()
    assert res.summary["trials"] == 32 and not (run / "journal.log.lock").exists()
    assert any("stale" in r.getMessage() for r in caplog.records)


class Transient(ModelEvaluator):
    """Raises a transient (infrastructure) error on calls listed in `fail_on` (1-based, counted per
    instance), like a worker lost mid-task."""

    def __init__(self, mix, fail_on):
        super().__init__(mix)
        self.fail_on, self.calls = set(fail_on), 0

    def __call__(self, cols):
        self.calls += 1
        if self.calls in self.fail_on:
            raise TransientError("worker lost")
        return super().__call__(cols)


def test_transient_faults_are_retried_and_the_front_equals_an_undisturbed_run(tmp_path):
    cfg = _study_file(tmp_path)
    StudyRunner(load_study(cfg), tmp_path / "ref").run()
    res = StudyRunner(load_study(cfg), tmp_path / "hit", evaluator=Transient("local", {1, 2, 4, 6, 7, 8})).run()
    assert res.summary["trials_failed"] == 0
    assert _results(tmp_path / "hit").equals(_results(tmp_path / "ref"))
    assert _front(tmp_path / "hit") == _front(tmp_path / "ref")


def test_trials_failed_by_the_infrastructure_are_rerun_on_resume(tmp_path):
    cfg = _study_file(tmp_path)
    StudyRunner(load_study(cfg), tmp_path / "ref").run()
    run = tmp_path / "hit"
    always = Transient("local", range(2, 10))  # batch 2 fails beyond every retry
    res = StudyRunner(load_study(cfg), run, trials=32, evaluator=always).run()
    stored = pl.read_parquet(run / "results.parquet")
    failed = stored.filter(pl.col("state") == "FAIL")
    assert res.summary["trials_failed"] == failed.height > 0 and failed["batch"].unique().to_list() == [1]
    assert failed["reason"].str.starts_with(TRANSIENT_MARK).all()
    # the rest of batch 1 repeats designs of batch 0: their stored results are reused (no evaluation)
    assert failed.height + stored.filter((pl.col("batch") == 1) & pl.col("repeat")).height >= 16
    res = StudyRunner(load_study(cfg), run).run()  # resumed: the failed batch is evaluated again
    assert res.summary["trials_failed"] == 0 and res.summary["trials"] == 48
    df = _results(run)
    assert (df["state"] == "COMPLETE").all()
    # the run's own Optuna journal (what optuna-dashboard opens) shows the re-run trials as they now are
    journal = optuna.load_study(study_name=load_study(cfg).name, storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run / "journal.log"))))
    states = [t.state for t in journal.get_trials(deepcopy=False)]
    assert len(states) == 48 and all(s == optuna.trial.TrialState.COMPLETE for s in states)
    ref = _results(tmp_path / "ref")
    assert df.head(32).select(ref.columns[:12]).equals(ref.head(32).select(ref.columns[:12]))


def test_disk_full_is_exit_2_and_the_rerun_resumes(tmp_path, monkeypatch):
    cfg = _study_file(tmp_path)
    StudyRunner(load_study(cfg), tmp_path / "ref").run()
    real = PartStore._write_bytes  # a generation's part (raw columns)

    def full(self, index, data, *flush):
        if index == 1:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path(index)))
        return real(self, index, data, *flush)

    monkeypatch.setattr(PartStore, "_write_bytes", full)
    with pytest.raises(DseUserError, match="No space left on device.*rerun"):
        StudyRunner(load_study(cfg), tmp_path / "r").run()
    monkeypatch.setattr(PartStore, "_write_bytes", real)
    res = StudyRunner(load_study(cfg), tmp_path / "r").run()
    assert res.resumed_from == 16 and _results(tmp_path / "r").equals(_results(tmp_path / "ref"))


def test_out_that_is_a_file_is_exit_2(tmp_path):
    f = tmp_path / "a_file"
    f.write_text("x")
    res = CliRunner().invoke(app, ["run", str(_study_file(tmp_path)), "--out", str(f), "--quiet"])
    assert isinstance(res.exception, DseUserError) and "is a file" in str(res.exception)
    assert f.read_text() == "x"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("small")
    StudyRunner(load_study(_study_file(tmp, budget={"trials": 32})), tmp / "runs" / "t").run()
    return tmp / "runs" / "t"


def test_export_never_writes_outside_out(tmp_path, small_run):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    meta = json.loads((run / "run.json").read_text())
    meta["name"] = "../../x"
    (run / "run.json").write_text(json.dumps(meta))
    out = tmp_path / "deep" / "a" / "out"
    res = CliRunner().invoke(app, ["export", str(run), "--out", str(out) + "/"])
    assert res.exception is None or isinstance(res.exception, DseUserError), res.exception
    written = [p for p in tmp_path.rglob("*.yaml") if run not in p.parents and p.parent != tmp_path]
    assert written and all(p.parent == out for p in written)


def test_export_and_pareto_reject_negative_counts(small_run, tmp_path):
    res = CliRunner().invoke(app, ["export", str(small_run), "--select", "top:-3", "--out", str(tmp_path / "o")])
    assert isinstance(res.exception, DseUserError) and "top:-3" in str(res.exception)
    assert not (tmp_path / "o").exists()
    res = CliRunner().invoke(app, ["pareto", str(small_run), "--limit", "-5"])
    assert res.exit_code == 2 and "--limit" in res.output


def test_export_to_a_folder_where_a_file_is_expected(small_run, tmp_path):
    res = CliRunner().invoke(app, ["export", str(small_run), "--format", "csv", "--out", str(tmp_path)])
    assert isinstance(res.exception, DseUserError) and "is a folder" in str(res.exception)


def test_run_folder_carries_the_resolved_mix(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "tiny.yaml").write_text(yaml.safe_dump({
        "name": "tiny-llm", "family": "llm", "hidden": 1024, "layers": 4, "heads": 8, "kv_heads": 8,
        "ffn": 4096, "vocab": 32000}))
    mix = {"name": "own", "scenarios": [{"scenario": {"name": "chat", "model": "models/tiny.yaml",
                                                      "phases": ["prefill", "decode"], "batch": 1,
                                                      "prompt_len": 256, "output_len": 64}, "weight": 1}]}
    cfg = _study_file(tmp_path, mix=mix, budget={"trials": 16},
                      objectives=[{"metric": "chat.tpot_ms", "direction": "minimize"},
                                  {"metric": "chip_cost_usd", "direction": "minimize"}])
    StudyRunner(load_study(cfg), tmp_path / "runs" / "t").run()
    moved = tmp_path / "elsewhere" / "t"
    shutil.copytree(tmp_path / "runs" / "t", moved)
    shutil.rmtree(tmp_path / "models")
    m = load_run(moved).mix()
    assert m.scenarios[0].scenario.model.hidden == 1024 and m.name == "own"


def test_garbage_in_the_middle_of_the_journal_is_rebuilt_from_the_parts(tmp_path):
    cfg = _study_file(tmp_path)
    run = tmp_path / "r"
    StudyRunner(load_study(cfg), run, trials=32).run()
    lines = (run / "journal.log").read_text().splitlines(True)
    lines.insert(len(lines) // 2, "garbage{{{\n")
    (run / "journal.log").write_text("".join(lines))
    res = StudyRunner(load_study(cfg), run).run()
    assert res.summary["trials"] == 48 and (run / "journal.log.damaged").exists()
    import optuna

    st = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run / "journal.log")))
    assert len(optuna.load_study(study_name="t", storage=st).get_trials()) == 48


@pytest.mark.parametrize("what", ["results.parquet", "part", "run.json"])
def test_truncated_files_for_pareto_and_export(tmp_path, small_run, what):
    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    f = {"results.parquet": run / "results.parquet", "run.json": run / "run.json",
         "part": run / "parts" / "generations.dlog"}[what]
    # (the part log cut within its second and last record: the tail a crash leaves, not read)
    f.write_bytes(f.read_bytes()[: f.stat().st_size * (3 if what == "part" else 2) // 4])
    if what == "part":
        (run / "results.parquet").unlink()
    for args in (["pareto", str(run)], ["export", str(run), "--out", str(tmp_path / "o")]):
        res = CliRunner().invoke(app, args)
        # readable from what is left (results.parquet is derived from the parts; run.json from study.yaml),
        # or one message naming the damaged file
        assert res.exception is None or (isinstance(res.exception, DseUserError) and f.name in str(res.exception)), \
            res.exception


def test_two_run_folders_sharing_one_sqlite_storage_do_not_mix(tmp_path):
    cfg = _study_file(tmp_path, storage=f"sqlite:///{tmp_path / 'shared.db'}", budget={"trials": 16})
    StudyRunner(load_study(cfg), tmp_path / "a" / "t").run()
    StudyRunner(load_study(cfg), tmp_path / "a" / "t", trials=32).run()  # the same folder resumes
    with pytest.raises(DseUserError, match="already holds study 't'"):
        StudyRunner(load_study(cfg), tmp_path / "b" / "t").run()
    assert not (tmp_path / "b").exists()


def test_rerun_trials_are_named_in_an_external_storage(tmp_path):
    """An external Optuna storage cannot be rewritten: the re-run trials are named in a study attribute."""
    db = f"sqlite:///{tmp_path / 'o.db'}"
    cfg = _study_file(tmp_path, storage=db)
    run = tmp_path / "hit"
    StudyRunner(load_study(cfg), run, trials=32, evaluator=Transient("local", range(2, 10))).run()
    failed = pl.read_parquet(run / "results.parquet").filter(pl.col("state") == "FAIL")["trial"].to_list()
    assert failed
    StudyRunner(load_study(cfg), run).run()
    attrs = optuna.load_study(study_name=load_study(cfg).name, storage=db).user_attrs
    assert attrs["dse:rerun_trials"] == sorted(failed)
