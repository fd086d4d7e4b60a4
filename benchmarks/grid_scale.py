"""A grid of N designs (default 10^6) run with `dse run`-equivalent code: wall time, designs/s and the driver's
peak memory (issue 15: 10^6 designs on 2 cores in <= 60 s with the driver under 1.5 GB RSS).

    python benchmarks/grid_scale.py [--designs 1000000] [--serial] [--stub] [--check]

`--stub` replaces the model by a cheap stand-in that returns the model's own columns (names, dtypes) filled
with deterministic functions of the knobs: it measures the grid machinery (enumeration, scoring, Parquet
parts, streaming finalize, Ray) and the driver's memory without the model's cost. `--check` recomputes the
front from results.parquet in this process and compares it with the stored `pareto` flags.
The driver's peak RSS is `ru_maxrss` of this process (Ray workers and the embedded Ray are other processes).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from dse.study.evaluator import ModelEvaluator
from dse.study.runner import StudyRunner
from dse.study.spec import load_study


def study_body(designs: int, backend: str, address: str | None = None) -> dict:
    """A datacenter-like grid whose product is `designs` (cores × clock × sram × links × chips × memory)."""
    # 2 memories × 5 chip counts × 10 link counts = 100; the rest split over three float/int knobs
    rest = max(1, designs // 100)
    a = next(x for x in range(max(1, round(rest ** (1 / 3))), 0, -1) if rest % x == 0)
    b = next(x for x in range(max(1, round(math.sqrt(rest // a))), 0, -1) if (rest // a) % x == 0)
    c = rest // (a * b)
    return {
        "name": "grid_scale",
        "space": {"name": "grid_scale", "params": {
            "chip.cores": {"low": 16, "high": 4096, "type": "int", "grid_points": a},
            "chip.clock_ghz": {"low": 0.8, "high": 2.0, "grid_points": b},
            "chip.sram_mb": {"low": 16, "high": 1024, "log": True, "grid_points": c},
            "chip.links": {"low": 4, "high": 40, "step": 4, "type": "int", "grid_points": 10},
            "system.num_chips": {"choices": [1, 2, 4, 8, 16]},
            "chip.memory": {"choices": ["hbm3", "hbm3e"]}},
            "fixed": {"chip.process_node": "n5", "chip.memory_stacks": 6, "chip.array_rows": 128,
                      "chip.array_cols": 128, "chip.precisions": ["bf16", "fp8", "int8", "int4"],
                      "chip.link": "nvlink4", "chip.packaging": "cowos_l", "system.topology": "switch"}},
        "mix": "balanced",
        "objectives": [{"metric": "mix.throughput", "direction": "maximize"},
                       {"metric": "system_cost_usd", "direction": "minimize"},
                       {"metric": "local_llm.tpot_ms", "direction": "minimize"}],
        "constraints": ["power_w <= 20000"],
        "sampler": {"kind": "grid", "shard_size": 50_000},
        "execution": {"backend": backend, **({"address": address} if address else {})},
    }


class StubModel(ModelEvaluator):
    """The model's columns, filled with cheap deterministic functions of the knobs (see module docstring)."""

    def __call__(self, cols):
        if not hasattr(self, "_proto"):
            one = {k: v[:1] for k, v in cols.items()}
            self._proto = {k: np.asarray(v) for k, v in super().__call__(one).items()}
        n = len(next(iter(cols.values())))
        cores = cols["chip.cores"].astype(float)
        clock = cols["chip.clock_ghz"].astype(float)
        sram = cols["chip.sram_mb"].astype(float)
        chips = cols["system.num_chips"].astype(float)
        links = cols["chip.links"].astype(float)
        thr = cores * clock * chips * (1 + np.log2(sram) / 10) * (1 + links / 100)
        cost = (cores * 40 + sram * 30 + links * 200) * chips
        out = {}
        for k, v in self._proto.items():
            if v.dtype.kind == "f":
                out[k] = np.full(n, float(v[0])) * (1 + (cores % 7) / 70)
            elif v.dtype.kind in "biu":
                out[k] = np.full(n, v[0], dtype=v.dtype)
            else:
                out[k] = np.full(n, v[0], dtype=object)
        out["mix.throughput"] = thr
        out["system_cost_usd"] = cost
        out["local_llm.tpot_ms"] = 1e4 / (clock * np.sqrt(cores) * (1 + sram / 1024))
        out["power_w"] = cores * clock * chips * 2.0
        out["feasible"] = np.ones(n, dtype=bool)
        out["reason"] = np.full(n, "", dtype=object)
        return out


def check_front(run_dir: Path, study) -> bool:
    """Recompute the feasible non-dominated set from results.parquet and compare with its `pareto` flags."""
    import polars as pl

    from dse.runs.front import front_mask

    df = pl.read_parquet(run_dir / "results.parquet")
    mask = front_mask(df, study.spec.objectives, use_stored=False)
    return bool(np.array_equal(mask, df["pareto"].to_numpy()))


def front_digest(run_dir: Path) -> str:
    """SHA-256 of the front's knob columns, rows sorted: equal for two runs that found the same front."""
    import hashlib

    import polars as pl

    df = pl.read_parquet(run_dir / "pareto.parquet")
    knobs = sorted(c for c in df.columns if c.startswith(("chip.", "system.")) and not df.schema[c].is_nested())
    rows = df.select(knobs).sort(knobs)
    return hashlib.sha256(rows.write_csv().encode()).hexdigest()[:16]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--designs", type=int, default=1_000_000)
    ap.add_argument("--serial", action="store_true", help="in-process, no Ray")
    ap.add_argument("--stub", action="store_true", help="a cheap stand-in for the model (machinery only)")
    ap.add_argument("--check", action="store_true", help="recompute the front from results.parquet")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--address", default=None, help="a running Ray cluster (e.g. 127.0.0.1:6379 of `ray start`)")
    a = ap.parse_args()
    out = a.out or Path(tempfile.mkdtemp(prefix="grid_scale-"))
    f = out / "grid_scale.yaml"
    out.mkdir(parents=True, exist_ok=True)
    f.write_text(yaml.safe_dump(study_body(a.designs, "serial" if a.serial else "ray", a.address), sort_keys=False))
    study = load_study(f)
    n = study.space.grid_size_upper(None)
    ev = StubModel(study.spec.mix) if a.stub else None
    t0 = time.perf_counter()
    cpu0 = sum(getattr(resource.getrusage(resource.RUSAGE_SELF), f) for f in ("ru_utime", "ru_stime"))
    res = StudyRunner(study, out / "runs" / "grid_scale", evaluator=ev).run()
    wall = time.perf_counter() - t0
    me = resource.getrusage(resource.RUSAGE_SELF)
    rss_mb = me.ru_maxrss / 1024
    s = res.summary
    ray = s.get("ray") or {}
    print(f"grid of {n:,} designs ({'stub model' if a.stub else 'model'}, {s['executor']}, "
          f"{s['grid']['shards']} shards ({ray.get('batches_in_process', s['grid']['shards'])} in the driver), "
          f"{s.get('ray_tasks', 0)} Ray tasks, Ray up after {ray.get('ray_up_s') or 0:.1f} s): "
          f"{wall:.1f} s, {s['trials'] / wall:,.0f} designs/s, driver CPU {me.ru_utime + me.ru_stime - cpu0:.1f} s, "
          f"driver peak RSS {rss_mb:,.0f} MB, front {s['front_size']:,}, feasible {s['feasible']:,}")
    if n >= 1_000_000:
        load = os.getloadavg()[0]
        print(f"issue 15 targets (10^6 designs, 2 cores): wall <= 60 s: {'met' if wall <= 60 else 'NOT met'} "
              f"({wall:.1f} s at load {load:.1f} on {os.cpu_count()} CPUs); driver RSS < 1.5 GB: "
              f"{'met' if rss_mb < 1536 else 'NOT met'} ({rss_mb:,.0f} MB)")
    print(f"front digest (compare two runs of the same grid, e.g. embedded vs --address): {front_digest(res.run_dir)}")
    if a.check:
        print("front recomputed from results.parquet equals the stored flags:", check_front(res.run_dir, study))
    return 0


if __name__ == "__main__":
    sys.exit(main())
