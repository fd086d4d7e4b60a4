"""Monte-Carlo cost: a 10⁴-design × 64-sample evaluation against the nominal one (issue 16 target ≤ 10×).

    python benchmarks/uncertainty_speed.py [--designs 10000] [--samples 64] [--mix balanced] [--exact] [--repeat 1]

Random designs as in benchmarks/model_speed.py. Prints the nominal time, the Monte-Carlo time, their
ratio (wall clock and CPU time), and how many distinct (design, performance input) pairs needed a
performance evaluation (samples whose ranges change a performance input; price ranges reuse the
performance columns, see dse/uncertainty/montecarlo.py). With --repeat N the nominal and the Monte-Carlo
evaluations alternate N times and the median ratios are printed (steadier on a shared machine: each
ratio compares two runs made under about the same load).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from model_speed import random_columns  # noqa: E402

from dse.evaluate import evaluate  # noqa: E402
from dse.model.arrays import DesignArrays  # noqa: E402
from dse.model.technology import default_technology  # noqa: E402
from dse.uncertainty.montecarlo import monte_carlo_columns  # noqa: E402
from dse.workloads.scenarios import load_mix  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--designs", type=int, default=10_000)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--mix", default="balanced")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--exact", action="store_true", help="re-evaluate samples whose static power differs")
    ap.add_argument("--repeat", type=int, default=1, help="alternate nominal and Monte-Carlo N times, print medians")
    args = ap.parse_args()
    tech = default_technology()
    mix = load_mix(args.mix)
    cols = random_columns(args.designs, np.random.default_rng(args.seed))
    evaluate(DesignArrays.from_columns({k: v[:50] for k, v in cols.items()}, tech), mix, tech)  # warm caches
    runs = []
    for _ in range(max(args.repeat, 1)):
        t0, c0 = time.perf_counter(), time.process_time()
        evaluate(DesignArrays.from_columns(cols, tech), mix, tech)
        nominal, nominal_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        mc = monte_carlo_columns(cols, mix, tech, samples=args.samples, seed=args.seed, exact=args.exact)
        mc.quantiles()
        runs.append((nominal, nominal_cpu, time.perf_counter() - t0, time.process_time() - c0))
    nominal, nominal_cpu, sampled, sampled_cpu = (float(np.median(v)) for v in zip(*runs))
    ratio = float(np.median([r[2] / r[0] for r in runs]))
    ratio_cpu = float(np.median([r[3] / r[1] for r in runs]))
    print(f"{args.designs} designs on mix {args.mix}, {len(tech.uncertain())} technology ranges")
    print(f"nominal evaluation:          {nominal:8.2f} s")
    print(f"{args.samples}-sample Monte-Carlo:      {sampled:8.2f} s  ({mc.full_evaluations} performance re-evaluations)")
    print(f"ratio Monte-Carlo / nominal: {ratio:8.2f}×  (target ≤ 10×{'; median of %d' % len(runs) if len(runs) > 1 else ''})")
    print(f"CPU-time ratio:              {ratio_cpu:8.2f}×  ({nominal_cpu:.2f} s vs {sampled_cpu:.2f} s "
          "of CPU; steadier than wall time on a shared machine)")


if __name__ == "__main__":
    main()
