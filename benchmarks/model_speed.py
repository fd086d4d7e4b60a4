"""Design evaluations per second of the vectorized model: random designs, best mapping, one core.

    python benchmarks/model_speed.py [--designs 100000] [--mix balanced] [--chunk 10000]

Prints designs/s for the whole pipeline (DesignArrays → area/cost/power → best tp/pp/dp/batch for every
scenario of the mix → mix metrics), the share of feasible designs, and the time per stage.
Target (issue "Workloads and the performance model"): ≥ 20,000 designs/s on one core.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from dse.model.arrays import DesignArrays  # noqa: E402
from dse.evaluate import evaluate  # noqa: E402
from dse.model.technology import default_technology  # noqa: E402
from dse.workloads.scenarios import load_mix  # noqa: E402


def random_columns(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random designs over the knobs of search_spaces/full.yaml (log-uniform sizes)."""
    def logu(lo, hi):
        return np.exp(rng.uniform(np.log(lo), np.log(hi), n))

    memory = rng.choice(["none", "lpddr5x", "gddr7", "hbm2e", "hbm3", "hbm3e", "hbm4"], n)
    return {
        "chip.process_node": rng.choice(["n16", "n7", "n5", "n4", "n3"], n),
        "chip.core_style": rng.choice(["systolic", "simt"], n),
        "chip.cores": np.round(logu(1, 512)).astype(int),
        "chip.array_rows": rng.choice([16, 32, 64, 128, 256], n),
        "chip.array_cols": rng.choice([16, 32, 64, 128, 256], n),
        "chip.clock_ghz": rng.uniform(0.5, 2.2, n),
        "chip.precisions": [["bf16", "fp8", "int8", "int4"]] * n,
        "chip.sram_mb": logu(1, 2048),
        "chip.sram_kind": rng.choice(["scratchpad", "cache"], n),
        "chip.memory": memory,
        "chip.memory_stacks": np.where(memory == "none", 0, rng.integers(1, 9, n)),
        "chip.link": rng.choice(["nvlink4", "nvlink5", "ici_v4", "serdes_112g"], n),
        "chip.links": rng.integers(1, 33, n),
        "chip.packaging": rng.choice(["organic", "cowos_s", "cowos_l"], n),
        "system.num_chips": rng.choice([1, 2, 4, 8, 16, 32, 64, 128, 256], n),
        "system.topology": rng.choice(["ring", "torus2d", "switch"], n),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--designs", type=int, default=100_000)
    ap.add_argument("--chunk", type=int, default=10_000, help="designs per vectorized call")
    ap.add_argument("--mix", default="balanced")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    tech = default_technology()
    mix = load_mix(args.mix)
    rng = np.random.default_rng(args.seed)
    cols = random_columns(args.designs, rng)
    evaluate(DesignArrays.from_columns({k: v[:64] for k, v in cols.items()}, tech), mix, tech)  # warm caches
    t_arrays = t_eval = 0.0
    feasible = 0
    for start in range(0, args.designs, args.chunk):
        part = {k: v[start:start + args.chunk] for k, v in cols.items()}
        t0 = time.perf_counter()
        arr = DesignArrays.from_columns(part, tech)
        t1 = time.perf_counter()
        out = evaluate(arr, mix, tech)
        t2 = time.perf_counter()
        t_arrays += t1 - t0
        t_eval += t2 - t1
        feasible += int(out["feasible"].sum())
    total = t_arrays + t_eval
    print(f"mix {mix.name} ({len(mix.scenarios)} scenarios), {args.designs:,} random designs, "
          f"chunks of {args.chunk:,}")
    print(f"  DesignArrays.from_columns: {t_arrays:7.2f} s")
    print(f"  evaluate (best mapping):   {t_eval:7.2f} s")
    print(f"  total:                     {total:7.2f} s  ->  {args.designs / total:,.0f} designs/s "
          f"(target 20,000)")
    print(f"  feasible on the whole mix: {feasible / args.designs:.1%}")


if __name__ == "__main__":
    main()
