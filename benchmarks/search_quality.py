"""Search quality: hypervolume reached by nsga2 / tpe / random as a fraction of the exhaustive grid front's.

The benchmark space is fully discrete (categoricals and stepped ranges), so the `grid` study enumerates
every design and its front is the true front. Every sampler's front is measured against the same
reference point (worst feasible grid value of each objective, 10% of its range further).
Usage: python benchmarks/search_quality.py [--quick] [--budgets 1000,5000,20000] [--tpe-max 2000]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dse.pareto import hypervolume  # noqa: E402
from dse.runs import Objective, objective_matrix  # noqa: E402
from dse.study.runner import StudyRunner  # noqa: E402
from dse.study.spec import load_study  # noqa: E402

SPACE = {
    "name": "quality",
    "params": {
        "chip.process_node": {"choices": ["n7", "n5", "n3"]},
        "chip.cores": {"choices": [16, 32, 64, 128, 256]},
        "chip.clock_ghz": {"choices": [0.8, 1.2, 1.6, 2.0]},
        "chip.sram_mb": {"choices": [16, 32, 64, 128, 256, 1024]},
        "chip.memory": {"choices": ["hbm3", "hbm3e", "none"]},
        "chip.memory_stacks": {"choices": [2, 4, 6, 8], "when": "chip.memory != 'none'", "inactive": 0},
        "chip.links": {"choices": [8, 18, 36]},
        "system.num_chips": {"choices": [1, 2, 4, 8, 16]},
    },
    "fixed": {"chip.array_rows": 128, "chip.array_cols": 128, "chip.precisions": ["bf16", "fp8", "int8", "int4"],
              "chip.link": "nvlink4", "chip.packaging": "cowos_l", "system.topology": "switch"},
}
OBJECTIVES = [{"metric": "mix.throughput", "direction": "maximize"},
              {"metric": "system_cost_usd", "direction": "minimize"},
              {"metric": "power_w", "direction": "minimize"}]


def study_file(tmp: Path, name: str, sampler: dict, trials: int, mix: str, serial: bool) -> Path:
    body = {"name": name, "space": SPACE, "mix": mix, "objectives": OBJECTIVES,
            "constraints": ["datacenter_llm.tpot_ms <= 50"] if mix in ("balanced", "datacenter") else [],
            "sampler": sampler, "budget": {"trials": trials}, "seed": 0,
            "execution": {"backend": "serial" if serial else "ray", "inline_below": 4096}}
    p = tmp / f"{name}.yaml"
    p.write_text(yaml.safe_dump(body, sort_keys=False))
    return p


def common_reference(Y: np.ndarray, maximize: list[bool]) -> np.ndarray:
    """One reference point for every sampler's front: the grid's worst feasible value of each objective
    pushed 10% of its range further (a comparison across runs, unlike a run's own stored reference)."""
    lo, hi = Y.min(axis=0), Y.max(axis=0)
    span = np.where(hi > lo, hi - lo, np.maximum(np.abs(hi) * 0.1, 1e-12) * 10)
    return np.where(np.asarray(maximize, dtype=bool), lo - 0.1 * span, hi + 0.1 * span)


def front_hv(run_dir: Path, ref: np.ndarray, maximize: list[bool]) -> tuple[float, int, int]:
    df = pl.read_parquet(run_dir / "results.parquet")
    front = df.filter(pl.col("pareto"))
    return hypervolume(objective_matrix(front, [Objective(**o) for o in OBJECTIVES]), ref, maximize), front.height, df.height


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="budgets 1000 and 5000, TPE at 1000 only")
    ap.add_argument("--budgets", default="1000,5000,20000")
    ap.add_argument("--samplers", default="nsga2,tpe,random")
    ap.add_argument("--tpe-max", type=int, default=2000,
                    help="skip TPE above this budget (its cost per trial grows with the study: ~0.2 s at 2k)")
    ap.add_argument("--mix", default="balanced")
    ap.add_argument("--population", type=int, default=100)
    ap.add_argument("--serial", action="store_true")
    args = ap.parse_args()
    budgets = [1000, 5000] if args.quick else [int(b) for b in args.budgets.split(",")]
    tpe_max = 1000 if args.quick else args.tpe_max
    maximize = [o["direction"] == "maximize" for o in OBJECTIVES]
    metrics = [o["metric"] for o in OBJECTIVES]
    tmp = Path(tempfile.mkdtemp(prefix="dse-quality-"))
    try:
        t0 = time.perf_counter()
        StudyRunner(load_study(study_file(tmp, "grid", {"kind": "grid", "shard_size": 10_000}, 1, args.mix,
                                              args.serial)), tmp / "grid").run()
        grid = pl.read_parquet(tmp / "grid" / "results.parquet")
        feas = grid.filter(pl.col("feasible"))
        ref = common_reference(objective_matrix(feas, [Objective(**o) for o in OBJECTIVES]), maximize)
        hv_grid, n_front, _ = front_hv(tmp / "grid", ref, maximize)
        print(f"grid: {grid.height} designs ({feas.height} feasible) in {time.perf_counter() - t0:.1f} s, "
              f"front {n_front}, hypervolume {hv_grid:.6g}")
        print("reference point: " + ", ".join(f"{m}={r:.4g}" for m, r in zip(metrics, ref)))
        print(f"{'sampler':8} {'trials':>7} {'HV/grid':>8} {'front':>6} {'seconds':>8}")
        for kind in args.samplers.split(","):
            for b in budgets:
                if kind == "tpe" and b > tpe_max:
                    print(f"{kind:8} {b:7d} {'skipped':>8}   (TPE above --tpe-max {tpe_max})")
                    continue
                sampler = {"kind": kind}
                if kind == "nsga2":
                    sampler["population_size"] = args.population
                name = f"{kind}-{b}"
                t1 = time.perf_counter()
                StudyRunner(load_study(study_file(tmp, name, sampler, b, args.mix, args.serial)), tmp / name).run()
                hv, nf, n = front_hv(tmp / name, ref, maximize)
                print(f"{kind:8} {n:7d} {hv / hv_grid:8.3f} {nf:6d} {time.perf_counter() - t1:8.1f}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
