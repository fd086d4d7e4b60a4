"""A run folder read by the tools users open it with: optuna-dashboard (its own WSGI app over the run's
journal, as `optuna-dashboard journal.log` serves it) and DuckDB (SQL over results.parquet)."""

from __future__ import annotations

import json
from pathlib import Path
from wsgiref.util import setup_testing_defaults

import optuna
import polars as pl
import pytest
import yaml

# both are in the test extras (`pip install -e ".[test]"`, what .ci/run does); a venv made before they were
# added skips here instead of failing at import
duckdb = pytest.importorskip("duckdb")
wsgi = pytest.importorskip("optuna_dashboard").wsgi

from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from _spaces import study_body

OBJECTIVES = ["local_llm.tpot_ms", "chip_cost_usd"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("interop")
    f = d / "s.yaml"
    f.write_text(yaml.safe_dump(study_body("interop", budget={"trials": 48}, seed=3,
                                           constraints=["tdp_w <= 400"])))
    StudyRunner(load_study(f), d / "runs" / "interop").run()
    return d / "runs" / "interop"


def _get(app, path: str) -> dict:
    env: dict = {}
    setup_testing_defaults(env)
    env.update(PATH_INFO=path, REQUEST_METHOD="GET")
    status: list[str] = []
    body = b"".join(app(env, lambda s, h, exc_info=None: status.append(s)))
    assert status[0].startswith("200"), (path, status, body[:300])
    return json.loads(body)


def test_optuna_dashboard_shows_metric_names_states_and_key_metrics(run):
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(run / "journal.log")))
    app = wsgi(storage)
    studies = _get(app, "/api/studies")["study_summaries"]
    assert [s["study_name"] for s in studies] == ["interop"]
    detail = _get(app, f"/api/studies/{studies[0]['study_id']}")
    assert detail["objective_names"] == OBJECTIVES  # not "Objective 0/1"
    df = pl.read_parquet(run / "results.parquet").sort("trial")
    assert len(detail["trials"]) == df.height == 48
    states = {"Complete": "COMPLETE", "Fail": "FAIL"}
    assert [states[t["state"]] for t in detail["trials"]] == df["state"].to_list()
    t = detail["trials"][0]
    row = df.row(0, named=True)
    attrs = {a["key"]: a["value"] for a in t["user_attrs"]}
    assert attrs["feasible"] == str(row["feasible"])
    if row["state"] == "COMPLETE":
        assert float(attrs["chip_cost_usd"]) == pytest.approx(row["chip_cost_usd"])
        assert [float(v) for v in t["values"]] == pytest.approx([row[m] for m in OBJECTIVES])


def test_duckdb_reads_integers_as_integers_units_and_the_front(run):
    con = duckdb.connect()
    res = str(run / "results.parquet")
    types = dict(con.sql(f"select column_name, column_type from (describe select * from '{res}')").fetchall())
    for c in ("trial", "batch", "chip.cores", "system.num_chips", "local_llm.tp", "local_llm.batch",
              "local_llm.chips_used"):
        assert types[c] == "BIGINT", (c, types[c])
    assert types["chip.sram_mb"] == "DOUBLE" and "sram_mb" not in types  # one column per concept
    meta = dict(con.sql(f"select key, value from parquet_kv_metadata('{res}')").fetchall())
    units = json.loads(meta[b"dse:units"].decode())
    assert units["chip.sram_mb"] == "MB" and units["chip_cost_usd"] == "US$" and units["local_llm.tpot_ms"] == "ms"
    n, feas = con.sql(f"select count(*), count(*) filter (where feasible) from '{res}'").fetchall()[0]
    df = pl.read_parquet(res)
    assert (n, feas) == (df.height, int(df["feasible"].sum()))
    front = con.sql(f"select trial from '{run / 'pareto.parquet'}' order by trial").fetchall()
    assert [t for (t,) in front] == sorted(pl.read_parquet(run / "pareto.parquet")["trial"].to_list())
    assert front
