"""Ray as users run it (issue 14.1): a real head and a worker started with `ray start`, with Ray's default token
authentication, a sweep attached with `dse run --address`, and `ray job submit` of a `dse run`.

Each test runs one script (CLUSTER below) in a private network namespace (`unshare -n`: loopback is the
only interface, so every Ray port is bound to 127.0.0.1 and nothing clashes with other Ray instances on the
machine); without `unshare` it runs on 127.0.0.1 with its own ports. Every node has its own temp dir and
ports; HOME is a temp dir holding the token file (~/.ray/auth_token), so `ray start --head` enables token
authentication the way it does for a user who has a token. The script starts each node as `ray start
--block` and stops it by PID (SIGTERM, then SIGKILL of every process it had started): never `ray stop`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from _spaces import ray_study_body

CLUSTER = r'''
import json, os, secrets, signal, socket, subprocess, sys, time
from pathlib import Path

work = Path(sys.argv[1]); mode = sys.argv[2]
bindir = Path(sys.executable).parent
subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True)  # inside `unshare -n`
home = work / "home"; (home / ".ray").mkdir(parents=True, exist_ok=True)
token = secrets.token_hex(32)
(home / ".ray" / "auth_token").write_text(token)
base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
env = {**base, "HOME": str(home)}
report = {"steps": {}}


def ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    out = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return out


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = [int(c) for t in os.listdir(f"/proc/{p}/task") for c in Path(f"/proc/{p}/task/{t}/children").read_text().split()]
        except OSError:
            continue
        out += kids
        todo += kids
    return out


def stop(proc, tmp):
    """Stop a node by PID: SIGTERM its `ray start --block`, then SIGKILL whatever it had started."""
    kids = descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
    for k in kids:
        try:
            os.kill(k, signal.SIGKILL)
        except OSError:
            pass

    def alive(k):
        try:
            return Path(f"/proc/{k}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    t_end = time.time() + 10  # SIGKILLed processes take a moment to go on a busy machine
    while time.time() < t_end and any(alive(k) for k in kids):
        time.sleep(0.1)
    report.setdefault("left", []).extend(f"{k} {Path(f'/proc/{k}/cmdline').read_text()[:200]}"
                                         for k in kids if alive(k))
    __import__("shutil").rmtree(tmp, ignore_errors=True)


nodes = []


def node_up(name, args, extra_env=None):
    """Start a node and wait for it; once more if Ray timed out starting it (a busy machine: Ray gives its
    raylet a fixed 30 s to register)."""
    for attempt in range(2):
        t0 = time.time()
        proc = node(f"{name}{attempt or ''}", args, extra_env)
        try:
            wait_up(f"{name}{attempt or ''}", proc, t0)
            report["steps"][f"{name}_attempts"] = attempt + 1
            return proc
        except RuntimeError:
            if attempt:
                raise
            stop(proc, nodes.pop()[1])


def node(name, args, extra_env=None):
    tmp = Path(f"/tmp/dsetest-{name}-{os.getpid()}")
    p = ports(8)
    cmd = [str(bindir / "ray"), "start", "--block", "--node-ip-address", "127.0.0.1", "--temp-dir", str(tmp),
           "--num-cpus", "1", "--object-store-memory", str(80 * 2**20), "--disable-usage-stats",
           "--node-manager-port", str(p[0]), "--object-manager-port", str(p[1]), "--runtime-env-agent-port", str(p[2]),
           "--dashboard-agent-listen-port", str(p[3]), "--dashboard-agent-grpc-port", str(p[4]),
           "--metrics-export-port", str(p[5]), "--min-worker-port", str(p[6]), "--max-worker-port", str(p[6] + 20), *args]
    log = open(work / f"{name}.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**env, **(extra_env or {})})
    nodes.append((proc, tmp))
    return proc


def wait_up(name, proc, t0):
    while "Ray runtime started." not in (work / f"{name}.log").read_text(errors="replace"):
        if proc.poll() is not None or time.time() - t0 > 60:
            raise RuntimeError(f"{name} did not start: " + (work / f"{name}.log").read_text()[-3000:])
        time.sleep(0.1)
    report["steps"][f"{name}_up_s"] = round(time.time() - t0, 2)


def dse_start(*args, extra_env=None):
    p = subprocess.Popen([str(bindir / "dse"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**env, **(extra_env or {})}, cwd=work)
    return p, time.time()


def dse_end(started, timeout=150):
    p, t0 = started
    out, err = p.communicate(timeout=timeout)
    return {"rc": p.returncode, "out": out[-3000:], "err": err[-3000:], "s": round(time.time() - t0, 2)}


def dse(*args, extra_env=None):
    return dse_end(dse_start(*args, extra_env=extra_env))


try:
    gcs, client, dash = ports(3)
    head_args = ["--head", "--port", str(gcs), "--ray-client-server-port", str(client)]
    if mode == "job":
        head_args += ["--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dash)]
    else:
        head_args += ["--include-dashboard", "false"]
    head = node_up("head", head_args)
    addr = f"127.0.0.1:{gcs}"
    report["address"] = addr
    report["head_log"] = "".join(p.read_text(errors="replace")[-4000:] for p in work.glob("head*.log"))
    if mode == "sweep":
        t0 = time.time()
        worker = node("worker", ["--address", addr], {"RAY_AUTH_MODE": "token"})
        # while the worker starts: the failures, each quick, exit 2, naming the address
        dead = f"127.0.0.1:{ports(1)[0]}"
        fails = {"no_token": dse_start("run", "small.yaml", "--out", "runs-x", "--address", addr, "-q",
                                       extra_env={"HOME": str(work)}),
                 "bad_token": dse_start("run", "small.yaml", "--out", "runs-x", "--address", addr, "-q",
                                        extra_env={"RAY_AUTH_TOKEN": "0" * 64}),
                 "dead": dse_start("run", "small.yaml", "--out", "runs-x", "--address", dead, "-q")}
        report.update({k: dse_end(v) for k, v in fails.items()})
        report["dead_address"] = dead
        # the probe's own time (the CLI's above includes Python start-up on a busy machine)
        from dse.errors import DseUserError
        from dse.study.execution import check_reachable

        report["probe_s"] = {}
        for case, a, over in (("no_token", addr, {"HOME": str(work)}), ("bad_token", addr, {"RAY_AUTH_TOKEN": "0" * 64}),
                              ("dead", dead, {})):
            old = {k: os.environ.get(k) for k in ("HOME", "RAY_AUTH_TOKEN")}
            os.environ.update({"HOME": str(home), **over})
            t = time.time()
            try:
                check_reachable(a)
            except DseUserError:
                pass
            report["probe_s"][case] = round(time.time() - t, 2)
            for k, v in old.items():
                os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
        try:
            wait_up("worker", worker, t0)
        except RuntimeError:  # Ray gives a raylet a fixed 30 s to register: again, on a busy machine
            stop(worker, nodes.pop()[1])
            node_up("worker-again", ["--address", addr], {"RAY_AUTH_MODE": "token"})
        report["sweep"] = dse("run", "sweep.yaml", "--out", "runs", "--address", addr, "-q")
        both = {"study_env": dse_start("run", "small.yaml", "--out", "runs", "-q", extra_env={"RAY_ADDRESS": addr}),
                "grid": dse_start("run", "grid.yaml", "--out", "runs", "--address", addr, "-q")}
        report.update({k: dse_end(v) for k, v in both.items()})
    else:
        t0 = time.time()
        r = subprocess.run([str(bindir / "ray"), "job", "submit", "--address", f"http://127.0.0.1:{dash}", "--",
                            str(bindir / "dse"), "run", str(work / "small.yaml"), "--out", str(work / "runs"), "-q"],
                           capture_output=True, text=True, timeout=150, env={**env, "RAY_AUTH_MODE": "token"},
                           cwd=work)  # Ray's CLI sends the token only in token mode (as Ray documents)
        report["job"] = {"rc": r.returncode, "out": r.stdout[-4000:], "err": r.stderr[-3000:], "s": round(time.time() - t0, 2)}
finally:
    for proc, tmp in reversed(nodes):
        stop(proc, tmp)
print("REPORT " + json.dumps(report))
'''

def _body(name: str, **over) -> dict:
    return ray_study_body(name, **{"budget": {"trials": 32}, **over})


def _netns() -> list[str]:
    """`unshare -n` when this user may create a network namespace, else nothing (loopback ports only)."""
    if shutil.which("unshare") and shutil.which("ip"):
        if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0:
            return ["unshare", "-n"]
    return []


def _run_cluster(tmp: Path, mode: str) -> dict:
    (tmp / "small.yaml").write_text(yaml.safe_dump(_body("small")))
    subs = [{"name": n, "fixed": {"chip.process_node": n}} for n in ("n7", "n5")]
    (tmp / "sweep.yaml").write_text(yaml.safe_dump(_body("sw", sweep=subs)))
    (tmp / "grid.yaml").write_text(yaml.safe_dump(_body("grid", sampler={"kind": "grid", "points": 3, "shard_size": 40})))
    script = tmp / "cluster.py"
    script.write_text(CLUSTER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    proc = subprocess.Popen([*_netns(), sys.executable, str(script), str(tmp), mode], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        out, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # the script's `finally` stops its nodes by PID
        out, err = proc.communicate(timeout=60)
    lines = [ln for ln in out.splitlines() if ln.startswith("REPORT ")]
    assert proc.returncode == 0 and lines, out[-3000:] + err[-5000:]
    rep = json.loads(lines[-1][len("REPORT "):])
    assert rep["left"] == [], rep["left"]  # every process the nodes started is gone
    print("timings:", rep["steps"], {k: v["s"] for k, v in rep.items() if isinstance(v, dict) and "s" in v})
    return rep


def _ray_log_lines(stderr: str) -> list[str]:
    """Lines Ray's C++ core or Python logger printed (`[2026-... W 123 45] file.cc:..` / `... WARNING x.py:..`)."""
    return [ln for ln in stderr.splitlines() if ln.startswith("[20") or " WARNING " in ln or " INFO " in ln]


@pytest.mark.slow
def test_attach_to_ray_start_cluster_with_token_auth(tmp_path):
    rep = _run_cluster(tmp_path, "sweep")
    assert "Token authentication is enabled" in rep["head_log"]  # Ray's default when a token exists
    addr = rep["address"]
    for case in ("no_token", "bad_token"):
        r = rep[case]
        assert r["rc"] == 2 and addr in r["err"] and "token" in r["err"] and "Traceback" not in r["err"], (case, r)
    # the probe is bounded by socket/gRPC timeouts (3 s + 2 x 1 s); slack for a loaded machine
    assert all(t < 7 for t in rep["probe_s"].values()), rep["probe_s"]
    r = rep["dead"]
    assert r["rc"] == 2 and rep["dead_address"] in r["err"] and "no Ray cluster answers" in r["err"], r
    sw = rep["sweep"]
    assert sw["rc"] == 0, sw
    assert _ray_log_lines(sw["err"]) == [], sw["err"]  # --quiet: no raylet / Ray logger line
    st = rep["study_env"]
    assert st["rc"] == 0 and _ray_log_lines(st["err"]) == [], st
    # the attached sweep gives the front a serial run gives
    merged = pl.read_parquet(tmp_path / "runs" / "sw" / "results.parquet")
    assert merged.height == 64
    from dse.study.spec import load_study
    from dse.study.sweep import run_sweep

    body = yaml.safe_load((tmp_path / "sweep.yaml").read_text())
    body["execution"] = {"backend": "serial"}
    (tmp_path / "serial.yaml").write_text(yaml.safe_dump(body))
    run_sweep(load_study(tmp_path / "serial.yaml"), tmp_path / "ser")
    ser = pl.read_parquet(tmp_path / "ser" / "sw" / "results.parquet")
    keys = ["study", "trial"]
    cols = ["study", "trial", "local_llm.tpot_ms", "chip_cost_usd", "pareto"]
    assert merged.select(cols).sort(keys).equals(ser.select(cols).sort(keys))
    assert pl.read_parquet(tmp_path / "runs" / "small" / "results.parquet").height == 32
    # a grid sharded over the two nodes: the front (and every row) of the same grid run in-process
    g = rep["grid"]
    assert g["rc"] == 0 and _ray_log_lines(g["err"]) == [], g
    from dse.study.runner import StudyRunner

    body = yaml.safe_load((tmp_path / "grid.yaml").read_text())
    body["execution"] = {"backend": "serial"}
    (tmp_path / "grid-serial.yaml").write_text(yaml.safe_dump(body))
    ser = StudyRunner(load_study(tmp_path / "grid-serial.yaml"), tmp_path / "ser" / "grid").run()
    on_cluster = pl.read_parquet(tmp_path / "runs" / "grid" / "results.parquet")
    assert ser.summary["grid"]["shards"] > 2 and on_cluster.height == ser.summary["trials"]
    assert on_cluster.equals(pl.read_parquet(tmp_path / "ser" / "grid" / "results.parquet"))


@pytest.mark.slow
def test_ray_job_submit_of_dse_run(tmp_path):
    pytest.importorskip("aiohttp", reason="`ray job submit` needs the Ray dashboard: pip install 'ray[default]'")
    rep = _run_cluster(tmp_path, "job")
    job = rep["job"]
    assert job["rc"] == 0 and "succeeded" in job["out"], job
    assert "small: 32 trials" in job["out"], job
    df = pl.read_parquet(tmp_path / "runs" / "small" / "results.parquet")
    assert df.height == 32 and (df["state"] == "COMPLETE").all()
