"""The run-folder format (`dse.runs`): write → read round trip, reading a folder written before this format,
one hypervolume (live = summary.json = dashboard), the run's technology used by every reader, Optuna's
public API only, Parquet columns (no duplicates, units), expression objectives."""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import numpy as np
import optuna
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

import dse
from dse.errors import DseUserError
from dse.pareto import hypervolume, nondominated_mask
from dse.runs import Objective, RunMeta, columns, load_run, load_trials, run_meta
from dse.runs.columns import units_of_file
from dse.runs.front import REFERENCE_RULE, column_name, derive_reference, front_mask, objective_matrix
from dse.runs.layout import RUN_JSON, TECHNOLOGY_YAML
from dse.runs.writer import PartStore, finalize
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from _spaces import SPACE

DATA = Path(__file__).parent / "data"
OLD_RUN = DATA / "run_v0_quickstart"  # written by main at 294a01d: `dse run studies/quickstart.yaml --trials 128`
OBJS = [Objective(metric="y1", direction="maximize"), Objective(metric="y2", direction="minimize")]


def _study_file(tmp_path: Path, name: str = "t", **over) -> Path:
    body = {"name": name, "space": SPACE, "mix": "local",
            "objectives": [{"metric": "local_llm.tpot_ms", "direction": "minimize"},
                           {"metric": "chip_cost_usd", "direction": "minimize"}],
            "constraints": ["tdp_w <= 400"], "sampler": {"kind": "nsga2", "population_size": 16},
            "budget": {"trials": 48}, "seed": 3, "execution": {"backend": "serial"}}
    body.update(over)
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(body, sort_keys=False))
    return p


# -- write → read ------------------------------------------------------------------------------------


def _toy_part(b: int, n: int, rng) -> pl.DataFrame:
    sram = rng.choice([16.0, 32.0, 64.0], n)
    return pl.DataFrame({"trial": np.arange(b * n, (b + 1) * n), "batch": np.full(n, b), "state": ["COMPLETE"] * n,
                         "chip.sram_mb": sram, "sram_mb": sram, "local_llm.tpot_ms": rng.random(n) * 10,
                         "y1": rng.random(n), "y2": rng.random(n), "feasible": rng.random(n) > 0.3,
                         "reason": [""] * n, "_optuna": ["{}"] * n})


def test_round_trip_write_then_read(tmp_path):
    rng = np.random.default_rng(0)
    run = tmp_path / "r"
    parts = PartStore(run)
    frames = [_toy_part(b, 20, rng) for b in range(3)]
    for b, f in enumerate(frames):
        parts.write(b, f)
    meta = RunMeta(name="toy", objectives=OBJS, knobs=["chip.sram_mb"])
    (run / RUN_JSON).write_text(meta.model_dump_json())
    summary = finalize(run, meta, wall_time_s=1.0, trials_this_run=60)
    back = load_run(run)
    allf = pl.concat(frames)
    assert back.results.height == 60 and back.results["trial"].to_list() == list(range(60))
    assert back.objectives() == OBJS and back.name == "toy"
    # the front is the non-dominated feasible rows, computed by hand here
    feas = allf["feasible"].to_numpy()
    Y = allf.select("y1", "y2").to_numpy()
    expect = np.zeros(60, dtype=bool)
    expect[np.flatnonzero(feas)] = nondominated_mask(Y[feas], [True, False])
    assert (back.results["pareto"].to_numpy() == expect).all() and summary["front_size"] == expect.sum()
    # reference point: derived from batch 0's feasible rows by the stated rule, stored in run.json
    ref = derive_reference(Y[feas & (allf["batch"].to_numpy() == 0)], [True, False])
    assert run_meta(run).reference_point == pytest.approx({"y1": ref[0], "y2": ref[1]})
    assert run_meta(run).reference_point_rule == REFERENCE_RULE
    assert summary["hypervolume"] == pytest.approx(hypervolume(Y[expect], ref, [True, False]), rel=1e-12)
    assert back.hypervolume() == pytest.approx(summary["hypervolume"], rel=1e-12)
    # the knob is stored once; the old metric name still reads it; bookkeeping columns are gone
    assert "sram_mb" not in back.results.columns and "_optuna" not in back.results.columns
    assert back.column("sram_mb").to_list() == allf["chip.sram_mb"].to_list()
    assert units_of_file(run / "results.parquet")["local_llm.tpot_ms"] == "ms"
    assert units_of_file(run / "results.parquet")["chip.sram_mb"] == "MB"


def test_parts_flushed_behind_are_in_place_at_once_and_on_disk_after_the_next_write(tmp_path, monkeypatch):
    """A study's part (sync_behind) is renamed into place before `write` returns (a killed run keeps it) and
    flushed by a thread; the next `write` and `close` wait for that flush, so at most one part is not yet on
    disk, and a flush error reaches the caller."""
    import os

    from dse.runs import writer

    rng = np.random.default_rng(2)
    store = PartStore(tmp_path / "r", fmt="arrows", sync_behind=True)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(writer.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    frames = [_toy_part(b, 5, rng) for b in range(3)]
    store.write(0, frames[0])
    assert store.read(0).equals(frames[0]) and not list((tmp_path / "r" / "parts").glob(".*.tmp"))
    store.write(1, frames[1])
    assert len(synced) >= 2  # part 0's file and folder, before part 1 was written
    store.close()
    assert len(synced) == 4 and store.read_all().equals(pl.concat(frames[:2]))
    store = PartStore(tmp_path / "r", fmt="arrows", sync_behind=True)
    monkeypatch.setattr(writer.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(5, "I/O error")))
    store.write(2, frames[2])
    with pytest.raises(OSError, match="I/O error"):
        store.close()


def test_finalize_from_the_frames_in_memory_writes_what_reading_the_parts_writes(tmp_path):
    """The runner hands finalize the parts' rows it holds; the run folder is the same as when finalize reads
    them back from disk."""
    rng = np.random.default_rng(3)
    frames = [_toy_part(b, 20, rng) for b in range(3)]
    meta = RunMeta(name="toy", objectives=OBJS, knobs=["chip.sram_mb"])
    out = {}
    for how in ("read", "memory"):
        run = tmp_path / how
        parts = PartStore(run, fmt="arrows")
        for b, f in enumerate(frames):
            parts.write(b, f)
        (run / RUN_JSON).write_text(meta.model_copy().model_dump_json())
        s = finalize(run, meta.model_copy(), wall_time_s=1.0, trials_this_run=60,
                     parts=pl.concat(frames) if how == "memory" else None)
        out[how] = (s, pl.read_parquet(run / "results.parquet"), pl.read_parquet(run / "pareto.parquet"))
    (s1, r1, p1), (s2, r2, p2) = out["read"], out["memory"]
    assert r1.equals(r2) and p1.equals(p2) and r1.height == 60
    assert {k: v for k, v in s1.items() if k != "finished_at"} == {k: v for k, v in s2.items() if k != "finished_at"}


def test_reader_rebuilds_from_parts_when_results_is_behind(tmp_path):
    rng = np.random.default_rng(1)
    run = tmp_path / "r"
    PartStore(run).write(0, _toy_part(0, 10, rng))
    (run / RUN_JSON).write_text(RunMeta(name="toy", objectives=OBJS).model_dump_json())
    finalize(run, run_meta(run), wall_time_s=1.0, trials_this_run=10)
    PartStore(run).write(1, _toy_part(1, 10, rng))  # a killed run: a newer part, no new results.parquet
    assert load_trials(run).height == 20


# -- folders written before dse.runs ----------------------------------------------------------------


def test_reads_a_run_folder_written_by_the_previous_format(tmp_path):
    old = tmp_path / "quickstart"
    shutil.copytree(OLD_RUN, old)
    run = load_run(old)
    assert run.name == "quickstart" and run.results.height == 128
    assert [o.metric for o in run.objectives()] == ["mix.throughput", "system_cost_usd", "local_llm.tpot_ms"]
    assert run.meta.reference_point is None and run.technology_file() is None
    # the stored pareto flag agrees with the front computed now
    assert (run.front() == front_mask(run.results, run.objectives(), use_stored=False)).all()
    assert run.column("chip.sram_mb").to_list() == run.column("sram_mb").to_list()
    # the reference point of an old run comes from the same first-batch rule
    ref = run.reference_point()
    feas = run.results.filter(pl.col("feasible"))
    assert ref == pytest.approx(derive_reference(objective_matrix(feas, run.objectives()), [True, False, False]))
    cli = CliRunner()
    import dse.commands.study  # noqa: F401 - registers the commands
    from dse.cli_app import app

    r = cli.invoke(app, ["pareto", str(old), "--json"])
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.output)) == int(run.results["pareto"].sum())
    r = cli.invoke(app, ["export", str(old), "--select", "top:3", "--format", "csv", "--out", str(tmp_path / "t.csv")])
    assert r.exit_code == 0, r.output
    assert pl.read_csv(tmp_path / "t.csv").height == 3


@pytest.mark.parametrize("fmt", ["arrows", "arrow", "parquet"])
def test_parts_of_either_format_round_trip_and_read_together(tmp_path, fmt):
    """A study's parts are Arrow IPC streams (earlier versions: Arrow IPC files), a grid's Parquet; a store reads
    them all (an older run's Parquet parts beside newer Arrow ones), and the run's tables come out tidied (the
    knob stored once, integers as Int64)."""
    rng = np.random.default_rng(1)
    run = tmp_path / "r"
    frames = [_toy_part(b, 10, rng).with_columns(pl.lit(3.0).alias("local_llm.tp")) for b in range(4)]
    PartStore(run, fmt="parquet").write(0, frames[0])  # as an older version wrote it
    store = PartStore(run, fmt=fmt)
    for b in (1, 2, 3):
        store.write(b, frames[b])
    names = sorted(p.name for p in (run / "parts").iterdir())
    assert names == ["part-000000.parquet"] + [f"part-{b:06d}.{fmt}" for b in (1, 2, 3)]
    assert store.indices() == [0, 1, 2, 3] and store.rows() == 40
    assert store.read(2).equals(frames[2] if fmt != "parquet" else columns.tidy(frames[2]))
    store.write(0, frames[0])  # a re-run batch is rewritten in the store's format, the other copy removed
    assert sorted(p.name for p in (run / "parts").iterdir())[0] == f"part-000000.{fmt}"
    back = load_trials(run)  # no results.parquet yet: from the parts, tidied
    assert back["trial"].to_list() == list(range(40))
    assert "sram_mb" not in back.columns and back.schema["local_llm.tp"] == pl.Int64
    damaged = run / "parts" / f"part-000002.{fmt}"
    damaged.write_bytes(damaged.read_bytes()[:100])  # torn (a full disk)
    with pytest.raises(DseUserError, match=f"part-000002.{fmt}: damaged part"):
        store.read_all()


def test_a_sweep_s_live_count_reads_parts_of_either_format(tmp_path):
    from dse.study.sweep import _rows_done

    rng = np.random.default_rng(2)
    PartStore(tmp_path / "s", fmt="parquet").write(0, _toy_part(0, 7, rng))
    PartStore(tmp_path / "s", fmt="arrow").write(1, _toy_part(1, 5, rng))
    PartStore(tmp_path / "s", fmt="arrows").write(2, _toy_part(2, 4, rng))
    assert _rows_done(tmp_path / "s") == 16 == PartStore(tmp_path / "s").rows()


@pytest.mark.parametrize("older", ["parquet", "arrow", "arrows", "dcol"])
def test_a_study_run_by_an_older_version_resumes_as_if_uninterrupted(tmp_path, older):
    """A run folder whose parts are Parquet, Arrow IPC files or streams, or raw-columns files (as earlier versions
    wrote them) resumes: the new generations are records of the part log and the results equal an uninterrupted
    run's."""
    cfg = _study_file(tmp_path, budget={"trials": 64})
    ref = StudyRunner(load_study(cfg), tmp_path / "ref" / "t").run()
    run = tmp_path / "old" / "t"
    StudyRunner(load_study(cfg), run, trials=32).run()
    store = PartStore(run, create=False)
    for b in store.indices():  # as the older version stored them: a file per part
        df, p = store.read(b), run / "parts" / f"part-{b:06d}.{older}"
        if older == "parquet":
            df.write_parquet(p)
        elif older == "arrow":
            df.write_ipc(p, compression="lz4")
        elif older == "arrows":
            df.write_ipc_stream(p, compression="lz4")
        else:
            p.write_bytes(store.log.read(b))
    (run / "parts" / "generations.dlog").unlink()
    res = StudyRunner(load_study(cfg), run).run()
    assert res.resumed_from == 32 and res.summary["trials"] == 64
    kinds = sorted({p.suffix for p in (run / "parts").iterdir()})
    assert kinds == sorted([".dlog", f".{older}"])
    a = pl.read_parquet(ref.run_dir / "results.parquet").drop("datetime_start", "datetime_complete")
    b = pl.read_parquet(run / "results.parquet").drop("datetime_start", "datetime_complete")
    assert a.equals(b)
    assert res.summary["hypervolume"] == ref.summary["hypervolume"]


def test_a_stream_part_cut_anywhere_reads_as_damaged(tmp_path):
    """An Arrow IPC stream has no footer, and polars reads a cut stream as its first record batches (or none)
    without an error: a part that does not end with the end-of-stream marker is damaged, wherever it was cut
    (a power loss before its flush), and so is one whose tail was zeroed."""
    rng = np.random.default_rng(4)
    store = PartStore(tmp_path / "r", fmt="arrows")
    store.write(0, _toy_part(0, 30, rng))
    path = store.path(0)
    whole = path.read_bytes()
    assert store.read(0).height == 30
    for cut in sorted({1, 8, len(whole) // 3, len(whole) // 2, len(whole) - 9, len(whole) - 8, len(whole) - 1}):
        path.write_bytes(whole[:cut])
        with pytest.raises(DseUserError, match="part-000000.arrows: damaged part"):
            store.read(0)
    path.write_bytes(whole[:-64] + bytes(64))
    with pytest.raises(DseUserError, match="damaged part"):
        store.read_all()


def test_the_live_front_is_the_non_dominated_set_of_every_feasible_row_added(tmp_path):
    from dse.runs.front import FrontTracker

    rng = np.random.default_rng(4)
    t = FrontTracker([True, False])
    Ys, fs = [], []
    for b in range(6):
        Y = rng.random((30, 2)).round(1)  # ties and duplicates
        f = rng.random(30) > 0.3
        t.add(Y, f)
        Ys.append(Y)
        fs.append(f)
        if b == 2:
            assert len(t.front) > 0  # read midway: merged, then more rows come
    allY = np.vstack(Ys)[np.concatenate(fs)]
    expect = allY[nondominated_mask(allY, [True, False])]
    assert np.array_equal(t.front, expect) and t.n == 180 and t.n_feasible == int(np.concatenate(fs).sum())
    assert t.ref is not None and t.hypervolume == pytest.approx(hypervolume(expect, t.ref, [True, False]))


# -- one hypervolume ----------------------------------------------------------------------------------


def test_hypervolume_is_one_number_live_summary_and_dashboard(tmp_path):
    from dse.report.convergence_view import convergence_table

    seen = []
    cfg = _study_file(tmp_path)
    res = StudyRunner(load_study(cfg), tmp_path / "runs" / "t", on_progress=seen.append).run()
    live = seen[-1].hypervolume
    summary = json.loads((tmp_path / "runs/t/summary.json").read_text())
    run = load_run(tmp_path / "runs" / "t")
    table = convergence_table([run], run.objectives(), 5)
    assert live > 0
    assert summary["hypervolume"] == pytest.approx(live, rel=1e-12) == res.summary["hypervolume"]
    assert run.hypervolume() == pytest.approx(live, rel=1e-12)
    assert table["hypervolume_raw"][-1] == pytest.approx(live, rel=1e-12)
    assert summary["reference_point"] == run.meta.reference_point  # stored once in run.json
    # Parquet: registry-integer metrics as integers, each unit in the metadata, the knob column stored once
    assert run.results.schema["local_llm.tp"] == pl.Int64 and run.results.schema["num_dies"] == pl.Int64
    assert units_of_file(run.path / "results.parquet")["system_cost_usd"] == "US$"
    assert "sram_mb" not in run.results.columns and "chip.sram_mb" in run.results.columns
    # a resumed run keeps the stored reference point, and its live number still matches summary.json
    seen.clear()
    res2 = StudyRunner(load_study(cfg), tmp_path / "runs" / "t", trials=80, on_progress=seen.append).run()
    assert run_meta(tmp_path / "runs" / "t").reference_point == summary["reference_point"]
    assert res2.summary["hypervolume"] == pytest.approx(seen[-1].hypervolume, rel=1e-12)
    assert res2.summary["hypervolume"] >= summary["hypervolume"]


def test_reference_point_stated_in_the_study_is_used_everywhere(tmp_path):
    rp = {"local_llm.tpot_ms": 1000.0, "chip_cost_usd": 1e5}
    seen = []
    StudyRunner(load_study(_study_file(tmp_path, reference_point=rp)), tmp_path / "t", on_progress=seen.append).run()
    run = load_run(tmp_path / "t")
    assert run.meta.reference_point == rp and run.summary["reference_point"] == rp
    assert run.summary["hypervolume"] == pytest.approx(seen[-1].hypervolume, rel=1e-12)


# -- technology -------------------------------------------------------------------------------------


def test_run_carries_its_technology_and_the_report_uses_it(tmp_path):
    from dse.catalog import load_catalog_design
    from dse.report.model_data import reference_metrics, technology_of

    (tmp_path / "tech.yaml").write_text("system:\n  board_usd_per_chip: 3000\n")  # default 1500
    cfg = _study_file(tmp_path, technology="tech.yaml")
    StudyRunner(load_study(cfg), tmp_path / "runs" / "t").run()
    (tmp_path / "tech.yaml").unlink()  # the run folder keeps its own copy
    run = load_run(tmp_path / "runs" / "t")
    assert run.meta.technology is not None and (run.path / TECHNOLOGY_YAML).is_file()
    assert run.technology().system.board_usd_per_chip == 3000
    h100 = load_catalog_design("H100-SXM")
    n = h100.system.num_chips
    mine, _ = reference_metrics(["H100-SXM"], run.mix(), technology_of(run))
    default, _ = reference_metrics(["H100-SXM"], run.mix(), None)
    # hand check: the board cost per chip is the only change, 1500 $ more on each of the system's chips
    assert mine["system_cost_usd"][0] - default["system_cost_usd"][0] == pytest.approx(1500.0 * n)
    assert mine["chip_cost_usd"][0] == default["chip_cost_usd"][0]
    # the stored trials were evaluated with the same technology the reader hands out
    from dse.model.arrays import DesignArrays
    from dse.evaluate import evaluate
    from dse.report.model_data import design_from_row

    row = run.results.filter(pl.col("feasible")).row(0, named=True)
    d = design_from_row(row, "x")
    again = evaluate(DesignArrays.from_designs([d], run.technology()), run.mix(), run.technology())
    assert again["system_cost_usd"][0] == pytest.approx(row["system_cost_usd"], rel=1e-12)


# -- Optuna: public API, names for optuna-dashboard ----------------------------------------------------


def test_no_private_optuna_attributes_in_dse():
    root = Path(dse.__file__).parent
    bad = [f"{p.relative_to(root)}:{i}" for p in root.rglob("*.py")
           for i, line in enumerate(p.read_text().splitlines(), 1)
           if re.search(r"\._(storage|study_id|trial_id)\b", line)]
    assert bad == []


def test_journal_has_metric_names_and_key_metrics_as_user_attrs(tmp_path):
    StudyRunner(load_study(_study_file(tmp_path)), tmp_path / "t").run()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "t/journal.log")))
    study = optuna.load_study(study_name="t", storage=storage)
    assert study.metric_names == ["local_llm.tpot_ms", "chip_cost_usd"]
    t = study.get_trials(deepcopy=False)[5]
    df = load_trials(tmp_path / "t")
    row = df.filter(pl.col("trial") == 5).row(0, named=True)
    assert t.user_attrs["feasible"] == row["feasible"]
    if t.state == optuna.trial.TrialState.COMPLETE:
        assert t.user_attrs["chip_cost_usd"] == row["chip_cost_usd"] and t.user_attrs["tdp_w"] == row["tdp_w"]
    assert set(t.constraints) == {"model: feasible", "tdp_w <= 400"}


def test_grid_does_not_import_the_runner():
    src = (Path(dse.__file__).parent / "study" / "grid.py").read_text()
    mods = {n.module for n in ast.walk(ast.parse(src)) if isinstance(n, ast.ImportFrom)}
    assert "dse.study.runner" not in mods


# -- objectives as expressions --------------------------------------------------------------------------


def test_objective_may_be_an_expression_over_metrics(tmp_path):
    expr = "chip_cost_usd / local_llm.tokens_per_s"
    cfg = _study_file(tmp_path, objectives=[{"metric": expr, "direction": "minimize"},
                                            {"metric": "local_llm.tpot_ms", "direction": "minimize"}])
    StudyRunner(load_study(cfg), tmp_path / "t").run()
    run = load_run(tmp_path / "t")
    feas = run.results.filter(pl.col("feasible"))
    assert feas.height > 0
    want = (feas["chip_cost_usd"] / feas["local_llm.tokens_per_s"]).to_numpy()
    assert np.allclose(feas[expr].to_numpy(), want)
    assert column_name(run.results.columns, expr) == expr and run.summary["front_size"] > 0
    # rows the model rejects (throughput 0, so the ratio is undefined) stay infeasible trials, not failures
    assert (run.results["state"] == "COMPLETE").all() and (~run.results["feasible"]).any()
    bad = _study_file(tmp_path, name="b", objectives=[{"metric": "chip_cost_usd / nope", "direction": "minimize"}])
    from dse.errors import ConfigError

    with pytest.raises(ConfigError, match="nope"):
        load_study(bad)
