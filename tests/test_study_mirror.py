"""The Optuna mirror written by a child process (large runs) equals the one the runner writes itself (small
runs): same trials, params, values, states, attributes and times; the child leaves no lock behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import polars as pl
import pytest

import dse.study.runner as runner_mod
from dse.runs.writer import PartStore
from dse.study.runner import StudyRunner, mirror_in_background
from dse.study.spec import load_study
from _spaces import study_file


def _journal(run: Path, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run / "journal.log")))
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def _key(t: optuna.trial.FrozenTrial) -> tuple:
    return (t.number, t.state, t.values, t.params, t.user_attrs, t.system_attrs)


@pytest.mark.parametrize("resume", [False, True])
def test_mirror_process_writes_the_same_journal_as_the_runner(tmp_path, monkeypatch, resume):
    cfg = study_file(tmp_path, budget={"trials": 64})
    monkeypatch.setenv("DSE_MIRROR_PROCESS", "never")  # the runner writes it
    StudyRunner(load_study(cfg), tmp_path / "fg").run()
    if resume:  # half by the runner, the rest by the child after a resume
        StudyRunner(load_study(cfg), tmp_path / "bg", trials=32).run()
    monkeypatch.setenv("DSE_MIRROR_PROCESS", "always")  # a child process writes it
    res = StudyRunner(load_study(cfg), tmp_path / "bg").run()
    assert res.summary["trials"] == 64
    fg, bg = _journal(tmp_path / "fg", "t"), _journal(tmp_path / "bg", "t")
    assert len(bg) == 64 and [t.number for t in bg] == list(range(64))
    assert [_key(t) for t in bg] == [_key(t) for t in fg]
    parts = pl.read_parquet(tmp_path / "bg" / "results.parquet").sort("trial")
    assert [t.datetime_start for t in bg] == parts["datetime_start"].to_list()  # the batch's own times
    assert not (tmp_path / "bg" / "journal.log.lock").exists()


def test_when_the_mirror_goes_to_a_child(monkeypatch):
    monkeypatch.delenv("DSE_MIRROR_PROCESS", raising=False)
    monkeypatch.setattr(runner_mod, "MIRROR_PROCESS_MIN_TRIALS", 5000)
    monkeypatch.setattr(runner_mod.os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    monkeypatch.setattr(runner_mod.os, "cpu_count", lambda: 2)
    assert not mirror_in_background(4999) and mirror_in_background(5000) and mirror_in_background(None)
    assert not mirror_in_background(10**6, external=False)  # the run's journal file: written in-process
    monkeypatch.setattr(runner_mod.os, "getloadavg", lambda: (1.5, 1.0, 1.0))  # no idle CPU: no gain
    assert not mirror_in_background(10**6)
    monkeypatch.setenv("DSE_MIRROR_PROCESS", "always")
    assert mirror_in_background(1)
    monkeypatch.setenv("DSE_MIRROR_PROCESS", "never")
    assert not mirror_in_background(None)


def _full_key(t: optuna.trial.FrozenTrial) -> tuple:
    return (*_key(t), t.distributions, t.datetime_start, t.datetime_complete)


@pytest.mark.parametrize("sampler", [{"kind": "nsga2", "population_size": 16}, {"kind": "tpe"}])
def test_journal_lines_are_what_optuna_writes(tmp_path, monkeypatch, sampler):
    """The journal lines the mirror writes itself (no per-trial Study.add_trial) read back, in Optuna, as the
    trials Optuna's own `add_trials` records from the same parts; for both `_optuna` record formats (the array
    sampler's journal records, the ask/tell loop's own)."""
    from optuna.storages.journal._storage import JournalOperation

    from dse.study.storage import JOURNAL_CREATE_TRIAL, frozen_trials, journal_lines

    assert JOURNAL_CREATE_TRIAL == JournalOperation.CREATE_TRIAL
    monkeypatch.setenv("DSE_MIRROR_PROCESS", "never")
    cfg = study_file(tmp_path, budget={"trials": 40}, sampler=sampler)
    st = load_study(cfg)
    StudyRunner(st, tmp_path / "r").run()
    parts = PartStore(tmp_path / "r", create=False).read_all()
    dists = st.space.distributions()
    ours = _journal(tmp_path / "r", "t")
    ref = optuna.create_study(storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "ref.log"))), study_name="t",
        directions=["minimize", "minimize"])
    if "_optuna" not in parts.columns:  # the array sampler's parts: the records are built from their columns
        parts = parts.sort("trial").with_columns(pl.Series("_optuna", StudyRunner(st, tmp_path / "r").stored_records(
            parts)))
    ref.add_trials(frozen_trials(parts, dists))
    theirs = ref.get_trials(deepcopy=False)
    # (the ask/tell loop mirrors its in-memory trials, which carry their own ask/tell times)
    key = _full_key if sampler["kind"] == "nsga2" else _key
    assert len(ours) == 40 and [key(t) for t in ours] == [key(t) for t in theirs]
    # either record format gives the same lines
    lines = journal_lines(parts, 0, "w", dists)
    (tmp_path / "again.log").write_text("".join(x + "\n" for x in (tmp_path / "ref.log").read_text().splitlines()[:1])
                                        + "\n".join(lines) + "\n")
    again = optuna.load_study(study_name="t", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "again.log")))).get_trials(deepcopy=False)
    assert [_full_key(t) for t in again] == [_full_key(t) for t in theirs]


@pytest.mark.parametrize("n_obj", [1, 2])
def test_a_stored_record_re_run_reads_back_with_its_new_outcome(n_obj):
    """`set_outcome` (a transient failure re-run) on a journal record: Optuna reads the new state and values,
    single- and multi-objective (`value` vs `values` in the journal)."""
    import datetime as dt
    import json

    from dse.study.storage import TrialRecords, frozen_trials, iso_utc, set_outcome

    dists = {"x": optuna.distributions.FloatDistribution(0, 1), "c": optuna.distributions.CategoricalDistribution(
        ["a", "b"])}
    now = dt.datetime(2026, 1, 2, 3, 4, 5, 678901)
    blob = TrialRecords(dists).record({"x": 0.25, "c": 1}, "FAIL", None, {"g": 0}, {"reason": "transient: x"},
                                      iso_utc(now), iso_utc(now))
    o = json.loads(blob)
    set_outcome(o, "COMPLETE", [1.5, 2.5][:n_obj])
    rows = pl.DataFrame({"trial": [0], "datetime_start": [now], "datetime_complete": [now],
                         "_optuna": [json.dumps(o, separators=(",", ":"))]})
    (t,) = frozen_trials(rows, dists)
    assert t.state == optuna.trial.TrialState.COMPLETE and t.values == [1.5, 2.5][:n_obj]
    assert t.params == {"x": 0.25, "c": "b"} and t.datetime_start == now



def _batch_case(rng, n, n_obj):
    """Random inputs for `TrialRecords.batch`, with inactive knobs, failed rows, reasons that need escaping and
    numbers of every magnitude (tiny ones, 1e-5..1e-4, huge, NaN and infinities in key metrics)."""
    dists = {"a": optuna.distributions.CategoricalDistribution(["x", "y", "z"]),
             "b": optuna.distributions.IntDistribution(1, 64, log=True),
             "c%d": optuna.distributions.FloatDistribution(1e-9, 1e9, log=True),
             "d": optuna.distributions.FloatDistribution(0.0, 1.0)}
    scale = 10.0 ** rng.integers(-12, 20, n)
    knobs = [("a", "categorical", rng.integers(0, 3, n).astype(float)),
             ("b", "int", np.where(rng.random(n) < 0.3, np.nan, rng.integers(1, 65, n).astype(float))),
             ("c%d", "float", rng.random(n) * scale),
             ("d", "float", np.where(rng.random(n) < 0.5, np.nan, rng.random(n) * 1e-4))]
    failed = rng.random(n) < 0.2
    Y = rng.normal(size=(n, n_obj)) * 10.0 ** rng.integers(-8, 18, (n, n_obj))
    Y[0, 0] = 0.0
    cmat = np.where(rng.random((n, 2)) < 0.5, 0.0, rng.random((n, 2)) * 1e3)
    reasons = np.array([["", "violates x <= 1", 'quote " back\\slash', "ünïcode %s 100%", "tab\there"][i]
                        for i in rng.integers(0, 5, n)], dtype=object)
    feasible = ~failed & (reasons == "")
    km = [("m.float", np.where(rng.random(n) < 0.1, np.inf, rng.normal(size=n) * scale)),
          ("m.int", rng.integers(-5, 10**12, n)), ("m.bool", rng.random(n) < 0.5),
          ("m.tiny", np.where(rng.random(n) < 0.1, np.nan, rng.random(n) * 1e-6))]
    sys_attrs = [("NSGAIISampler:generation", np.int64(7)), ("constraints:model: feasible", cmat[:, 0]),
                 ("constraints:x <= 1 %", cmat[:, 1])]
    return dists, knobs, failed, Y, sys_attrs, feasible, reasons, km


@pytest.mark.parametrize("n_obj", [1, 3])
@pytest.mark.parametrize("n", [1, 7, 100])
def test_batch_records_are_the_records_one_by_one(n_obj, n):
    """`TrialRecords.batch` (numbers turned to text in one pass, one template per pattern of present fields)
    writes text for text what `record` writes trial by trial, and the journal made of them loads in Optuna."""
    from dse.study.storage import TrialRecords

    rng = np.random.default_rng(n * 10 + n_obj)
    dists, knobs, failed, Y, sys_attrs, feasible, reasons, km = _batch_case(rng, n, n_obj)
    rec = TrialRecords(dists)
    start, complete = "2026-01-02T03:04:05.678901+00:00", "2026-01-02T03:04:06.000000+00:00"
    got = rec.batch(knobs, failed, Y, sys_attrs, feasible, reasons, km, start, complete)
    want = []
    for i in range(n):
        params = {}
        for name, kind, x in knobs:
            if x[i] == x[i]:
                params[name] = int(x[i]) if kind == "categorical" else float(round(x[i])) if kind == "int" \
                    else float(x[i])
        sa = {k: (v.item() if np.ndim(v) == 0 else v[i].item()) for k, v in sys_attrs}
        ua = {"feasible": bool(feasible[i])}
        if reasons[i]:
            ua["reason"] = reasons[i]
        if not failed[i]:
            ua.update({k: v[i].item() for k, v in km})
        want.append(rec.record(params, "FAIL" if failed[i] else "COMPLETE", Y[i].tolist(), sa, ua, start, complete))
    assert got == want


def test_json_number_texts_is_json_for_every_magnitude():
    """The vectorized number text is Python json's text (repr; NaN, Infinity) for numbers of every magnitude."""
    import json

    from dse.study.storage import json_number_texts

    rng = np.random.default_rng(3)
    a = rng.normal(size=20000) * 10.0 ** rng.integers(-320, 309, 20000)
    a[:12] = [0.0, -0.0, np.nan, np.inf, -np.inf, 1e-5, 1e-4, 9.999999999999999e-05, 1e16, 1e15, 5e-324, 1e308]
    assert json_number_texts(a) == [json.dumps(x) for x in a.tolist()]
