"""Issue 7.4 / 7.5: Ray worker processes killed mid-task, and a real two-node Ray cluster on 127.0.0.1 that
loses a node while a sweep runs.

Worker kills use test-only evaluators defined inside the test functions (cloudpickle ships them by
value), which `os._exit` the worker: nothing in `dse` knows about them.

The two-node cluster runs in its own Python process (`ray.cluster_utils.Cluster`, 1 CPU per node, 80 MB
object stores, a fresh short temp dir): the session's embedded Ray fixture lives in this process and
a process can only be connected to one Ray cluster, so the cluster test never touches it and can run
before or after any `ray` test. The cluster is shut down in a `finally` block."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from dse.study.evaluator import ModelEvaluator
from dse.study.execution import EvalError, RayExecutor
from dse.study.runner import StudyRunner
from dse.study.spec import load_study
from _spaces import ray_study_body, write_study

def _results(run: Path) -> pl.DataFrame:
    return pl.read_parquet(run / "results.parquet").drop("datetime_start", "datetime_complete")


# -- 7.4: worker processes killed ------------------------------------------------------------------------

@pytest.mark.ray
def test_killed_worker_is_retried_and_study_completes(tmp_path, ray_session):
    class DiesOnce(ModelEvaluator):
        """Kills its worker process the first time any worker evaluates a chunk (marker file, O_EXCL)."""

        def __init__(self, mix, marker):
            super().__init__(mix)
            self.marker = marker

        def __call__(self, cols):
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return super().__call__(cols)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os._exit(1)  # the worker dies like an OOM kill: no exception, no cleanup

    cfg = write_study(tmp_path, ray_study_body("w"))
    marker = tmp_path / "died"
    res = StudyRunner(load_study(cfg), tmp_path / "ray" / "w", evaluator=DiesOnce("local", str(marker))).run()
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker (not the driver) died
    df = _results(tmp_path / "ray" / "w")
    assert df.height == 48 and res.summary["trials_failed"] == 0 and (df["state"] == "COMPLETE").all()
    # the retried chunk gave exactly what an undisturbed serial run gives
    ref = StudyRunner(load_study(cfg), tmp_path / "serial" / "w", serial=True).run()
    assert ref.summary["trials"] == 48 and _results(tmp_path / "serial" / "w").equals(df)


@pytest.mark.ray
def test_worker_that_always_dies_fails_its_chunk_not_the_study(tmp_path, ray_session):
    class AlwaysDies(ModelEvaluator):
        def __call__(self, cols):
            if len(cols["chip.cores"]) and int(cols["chip.cores"][0]) < 0:  # never true: keeps the signature honest
                return super().__call__(cols)
            os._exit(3)

    ex = RayExecutor(AlwaysDies("local"), inline_below=0)
    try:
        cols = {"chip.cores": np.array([64]), "chip.sram_mb": np.array([64.0]), "system.num_chips": np.array([1])}
        out = ex.evaluate(cols)
    finally:
        ex.close()
    assert len(out) == 1 and isinstance(out[0][1], EvalError)
    assert "evaluation error" in str(out[0][1]) and "Worker" in str(out[0][1])  # WorkerCrashedError after retries


# -- 7.5: a real two-node cluster that loses a node mid-sweep -------------------------------------------------

CLUSTER_SCRIPT = r'''
import json, os, sys, tempfile, threading, time
from pathlib import Path

import polars as pl
import ray
from ray.cluster_utils import Cluster

from dse.runs.writer import PartStore
from dse.study.evaluator import ModelEvaluator
from dse.study.spec import load_study
from dse.study.sweep import run_sweep

work = Path(sys.argv[1])
body = json.loads(Path(sys.argv[2]).read_text())
budget = body["budget"]["trials"]


class NodeTagged(ModelEvaluator):
    """The model, slowed to ~0.15 s per batch, plus the id of the Ray node that evaluated each design."""

    def __call__(self, cols):
        time.sleep(0.15)
        out = super().__call__(cols)
        node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "serial"
        out["node_id"] = __import__("numpy").array([node] * len(out["feasible"]), dtype=object)
        return out


def evaluator_for(sub):
    return NodeTagged(sub.spec.mix)


def node_rows(sweep_dir):
    """{node id: designs stored so far} over every sub-study's parts."""
    seen = {}
    for d in sweep_dir.glob("*/parts"):  # (each sub-study's parts: files, or records of its part log)
        store = PartStore(d.parent, create=False)
        for i in store.indices():
            try:
                for n in store.read(i, columns=["node_id"])["node_id"].to_list():
                    seen[n] = seen.get(n, 0) + 1
            except Exception:
                pass
    return seen


report = {}
ray_tmp = tempfile.mkdtemp(prefix="dseray", dir="/tmp")  # short: Ray's unix socket paths are length-limited
node_args = dict(num_cpus=1, object_store_memory=80 * 2**20, node_ip_address="127.0.0.1")
cluster = None
try:
    cluster = Cluster(initialize_head=True,
                      head_node_args={**node_args, "temp_dir": ray_tmp, "include_dashboard": False})
    worker = cluster.add_node(**node_args)
    cluster.wait_for_nodes()
    assert cluster.address.startswith("127.0.0.1:"), cluster.address
    report["address"] = cluster.address
    report["head_id"], report["worker_id"] = cluster.head_node.node_id, worker.node_id

    body["execution"] = {"backend": "ray", "address": cluster.address}
    f = work / "sweep.yaml"
    f.write_text(json.dumps(body))
    study = load_study(f)
    out = work / "runs"
    result, error = {}, []

    def go():
        try:
            result.update(run_sweep(study, out, evaluator_for=evaluator_for))
        except BaseException as exc:  # reported, not swallowed
            import traceback
            error.append(traceback.format_exc())

    t = threading.Thread(target=go)
    t0 = time.time()
    t.start()
    sweep_dir = out / study.name
    pop = body["sampler"]["population_size"]
    while time.time() - t0 < 60:  # remove the worker node once it has evaluated a few batches and the head
        rows = node_rows(sweep_dir)  # has started too (on a loaded machine the head may start later), while
        w, h = rows.get(worker.node_id, 0), rows.get(cluster.head_node.node_id, 0)  # the worker's sub-study
        if (w >= 2 * pop and h > 0) or w >= budget - 4 * pop:  # is still unfinished
            break
        time.sleep(0.05)
    report["rows_by_node_before_removal"] = node_rows(sweep_dir)
    cluster.remove_node(worker)
    report["removed_at_s"] = round(time.time() - t0, 2)
    t.join(timeout=90)
    report["alive"] = t.is_alive()
    report["error"] = error
    report["summary"] = {k: v for k, v in result.items() if k != "studies"}
    report["rows_by_node"] = node_rows(sweep_dir)
finally:
    if ray.is_initialized():
        ray.shutdown()
    if cluster is not None:
        cluster.shutdown()
    __import__("shutil").rmtree(ray_tmp, ignore_errors=True)
print("REPORT " + json.dumps(report))
'''


@pytest.mark.slow
def test_two_node_cluster_sweep_survives_node_removal(tmp_path):
    subs = [{"name": n, "fixed": {"chip.process_node": n}} for n in ("n7", "n5", "n3")]
    body = ray_study_body("cl", budget={"trials": 120}, sampler={"kind": "nsga2", "population_size": 10}, sweep=subs)
    (tmp_path / "body.json").write_text(json.dumps(body))
    script = tmp_path / "cluster.py"
    script.write_text(CLUSTER_SCRIPT)
    # Loopback only: Ray rewrites a 127.0.0.1 bootstrap address to the host's IP unless "cluster mode"
    # is off, which is what this switch does on Linux (every node, the GCS and the driver use 127.0.0.1).
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path), str(tmp_path / "body.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        stdout, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # let the script's `finally` shut the cluster down
        try:
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
    lines = [ln for ln in stdout.splitlines() if ln.startswith("REPORT ")]
    assert proc.returncode == 0 and lines, stdout[-3000:] + stderr[-5000:]
    rep = json.loads(lines[-1][len("REPORT "):])
    assert rep["address"].startswith("127.0.0.1:")
    assert not rep["error"] and not rep["alive"], rep
    head, worker = rep["head_id"], rep["worker_id"]
    before, after = rep["rows_by_node_before_removal"], rep["rows_by_node"]
    assert before.get(worker, 0) > 0 and before.get(head, 0) > 0, rep  # tasks really ran on both nodes
    assert before[worker] < 120, rep  # the node went away with its sub-study unfinished ...
    assert after[worker] == before[worker] and after[head] == 360 - before[worker], rep  # ... the head finished it
    # the sweep completed: every sub-study has exactly its budget, no duplicates, one merged front
    sweep_dir = tmp_path / "runs" / "cl"
    for s in subs:
        df = pl.read_parquet(sweep_dir / s["name"] / "results.parquet")
        assert df.height == 120 and df["trial"].to_list() == list(range(120)), s["name"]
        assert set(df["chip.process_node"]) == {s["name"]}
    merged = pl.read_parquet(sweep_dir / "results.parquet")
    assert merged.height == 360 and rep["summary"]["trials"] == 360
    assert merged["pareto"].sum() == rep["summary"]["front_size"] > 0
    # ... and equals the same sweep run serially here (node loss changed nothing but where designs ran)
    from dse.study.sweep import run_sweep

    serial = run_sweep(load_study(write_study(tmp_path, {**body, "execution": {"backend": "serial"}})), tmp_path / "ser")
    assert serial["trials"] == 360
    for s in subs:
        a = _results(sweep_dir / s["name"]).drop("node_id")
        b = _results(tmp_path / "ser" / "cl" / s["name"])
        assert a.equals(b.select(a.columns)), s["name"]
