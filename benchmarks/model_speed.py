"""Design evaluations per second of the vectorized model: random designs, best mapping, one core.

    python benchmarks/model_speed.py [--designs 100000] [--small-designs 12800] [--chunks 10000,1024,128]
                                     [--mix balanced] [--repeat 3] [--breakdown] [--kernel both|numba|numpy]
                                     [--designs-from RUN_DIR] [--parts]

Prints designs/s for the whole pipeline (DesignArrays → area/cost/power → best tp/pp/dp/batch for every
scenario of the mix → mix metrics) at chunks of 10,000, 1,024 and 128 designs per `evaluate` call (`--chunks`:
chunks of 10,000 or more evaluate `--designs` designs, smaller ones `--small-designs`), the best
of `--repeat` runs (the machine may be shared: CPU time of this process, wall time beside it), the time
per stage, the share of feasible designs and the ratio to the targets of issue 15 ("Speed"):
≥ 100,000 designs/s at chunks of 10k and ≥ 30,000 designs/s at chunks of 128 on one core. `--breakdown`
adds the CPU time of the design metrics and of each scenario's mapping (the rest of `evaluate` is the
mix arithmetic). Both paths of the model's compiled kernels (`perf.step_times`, the LLM mapping, `chip_area`)
are measured (`--kernel both`, the default): the compiled kernels (numba, `DSE_KERNEL=numba`; the first call's
compile or cache-load time is printed) and numpy.
`--designs-from RUN_DIR` evaluates a run's own designs (its results.parquet, in trial order) instead of random
ones: e.g. the quick start's 2,000 NSGA-II designs, mostly feasible and heavier than random full.yaml designs
(~18 % feasible), at its generation size (`--chunks 125 --kernel numpy`: the path the quick start takes).
`--parts` adds the CPU time per call of `chip_area` and of the voltage solve (`voltage.design_energy_ratio`
on the designs' clocks, as `DesignArrays` calls it) at each chunk size, on the same designs.
`--against DIR` compares this checkout's model with another checkout's (e.g. a `git worktree` of main) on a shared
machine: `--rounds` rounds, each running this benchmark (its other options) once in a process of its own on each
checkout, one after the other, so that the machine's load hits both alike; it prints each round's designs/s and the
ratio this / other per kernel and chunk size (median, min, max), and the machine's load at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from dse.model.arrays import DesignArrays  # noqa: E402
from dse.evaluate import evaluate  # noqa: E402
from dse.evaluate.mapping import evaluate_scenario  # noqa: E402
from dse.evaluate.table import design_metrics  # noqa: E402
from dse.model import perf, voltage  # noqa: E402
from dse.model.area import chip_area  # noqa: E402
from dse.model.calibration import load_calibration  # noqa: E402
from dse.model.technology import default_technology  # noqa: E402
from dse.study.samplers import sample_space  # noqa: E402
from dse.study.space import load_space  # noqa: E402
from dse.workloads.scenarios import load_mix  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FULL_SPACE = ROOT / "search_spaces" / "full.yaml"
RATES = "rates: "  # the line a run prints its designs/s on, as JSON, for `--against`


def random_columns(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """`n` random designs of search_spaces/full.yaml (every knob a search varies), as knob columns."""
    return sample_space(load_space(FULL_SPACE), n, rng)


def run_columns(run_dir: str) -> dict[str, np.ndarray]:
    """The designs of a run (its results.parquet, trial order) as knob columns: every design knob it stores
    (searched and fixed), the others at their defaults."""
    import polars as pl

    from dse.model.knobs import BY_NAME

    df = pl.read_parquet(Path(run_dir) / "results.parquet").sort("trial")
    cols = {}
    for k in (c for c in df.columns if c in BY_NAME):
        v = df[k].to_list()
        cols[k] = np.array(v, dtype=object) if isinstance(v[0], list) or isinstance(v[0], str) else np.asarray(v)
    return cols


TARGETS = {10_000: 100_000, 128: 30_000}  # chunk size -> designs/s (issue 15, "How we will judge it")


def run(cols: dict, n: int, chunk: int, mix, tech) -> dict[str, float]:
    """Evaluate the first `n` designs of `cols` in chunks of `chunk`: CPU and wall seconds per stage."""
    out = {"arrays_cpu": 0.0, "eval_cpu": 0.0, "wall": 0.0, "feasible": 0}
    for start in range(0, n, chunk):
        part = {k: v[start:min(start + chunk, n)] for k, v in cols.items()}
        w0, c0 = time.perf_counter(), time.process_time()
        arr = DesignArrays.from_columns(part, tech)
        c1 = time.process_time()
        res = evaluate(arr, mix, tech)
        c2 = time.process_time()
        out["wall"] += time.perf_counter() - w0
        out["arrays_cpu"] += c1 - c0
        out["eval_cpu"] += c2 - c1
        out["feasible"] += int(res["feasible"].sum())
    return out


def breakdown(cols: dict, n: int, chunk: int, mix, tech) -> dict[str, float]:
    """CPU seconds of the parts of `evaluate` over the first `n` designs in chunks of `chunk`: the design
    metrics (area, cost, power), then each scenario's mapping (best plan) on the designs that pass them."""
    cal = load_calibration(None)
    out = {"design metrics": 0.0} | {e.scenario.name: 0.0 for e in mix.scenarios}
    for start in range(0, n, chunk):
        part = {k: v[start:min(start + chunk, n)] for k, v in cols.items()}
        arr = DesignArrays.from_columns(part, tech)
        c0 = time.process_time()
        hw, _, ok, _ = design_metrics(arr)
        out["design metrics"] += time.process_time() - c0
        hw = hw.take(np.flatnonzero(ok))
        for e in mix.scenarios if hw.n else ():  # (evaluate maps no scenario on a chunk without feasible designs)
            c0 = time.process_time()
            evaluate_scenario(e.scenario, hw, cal)
            out[e.scenario.name] += time.process_time() - c0
    return out


def part_times(cols: dict, n: int, chunk: int, tech, repeat: int) -> dict[str, float]:
    """CPU ms per call of `chip_area` and of the voltage solve over the first `n` designs in chunks of `chunk`
    (the best of `repeat` passes)."""
    arrs = [DesignArrays.from_columns({k: v[s:min(s + chunk, n)] for k, v in cols.items()}, tech)
            for s in range(0, n, chunk)]
    jobs = {"chip_area": chip_area,
            "voltage": lambda a: voltage.design_energy_ratio(a.clock_over_nominal, 1.0)}
    out = {}
    for name, fn in jobs.items():
        best = np.inf
        for _ in range(repeat):
            c0 = time.process_time()
            for a in arrs:
                fn(a)
            best = min(best, time.process_time() - c0)
        out[name] = best / len(arrs) * 1e3
    return out


def use_kernel(mode: str) -> None:
    """Make the model's kernels (`perf.step_times`, the mapping, `chip_area`) take the `mode` path ("numba" or
    "numpy") from the next call on."""
    os.environ[perf.KERNEL_ENV] = mode
    perf.reset_kernel()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--designs", type=int, default=100_000, help="designs evaluated at chunks of 10,000")
    ap.add_argument("--small-designs", type=int, default=12_800, help="designs evaluated at smaller chunks")
    ap.add_argument("--chunks", default="10000,1024,128", help="designs per evaluate call, comma-separated")
    ap.add_argument("--mix", default="balanced")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="runs per chunk size; the best is reported")
    ap.add_argument("--breakdown", action="store_true", help="also print where the time goes, per chunk size")
    ap.add_argument("--kernel", choices=("both", "numba", "numpy"), default="both",
                    help="path of the model's kernels: compiled (numba), numpy, or both one after the other")
    ap.add_argument("--parts", action="store_true",
                    help="also print CPU ms per call of chip_area and of the voltage solve, per chunk size")
    ap.add_argument("--designs-from", default=None, metavar="RUN_DIR",
                    help="evaluate this run's designs (results.parquet) instead of random full.yaml designs")
    ap.add_argument("--against", default=None, metavar="DIR",
                    help="compare with the model of another checkout (its root), runs interleaved in rounds")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of --against (one run of each checkout each)")
    ap.add_argument("--print-rates", action="store_true", help=argparse.SUPPRESS)  # (a run of --against)
    args = ap.parse_args()
    if args.against:
        return against(args)

    tech = default_technology()
    mix = load_mix(args.mix)
    if args.designs_from:
        cols = run_columns(args.designs_from)
        have = len(next(iter(cols.values())))
        args.designs, args.small_designs = min(args.designs, have), min(args.small_designs, have)
        source = f"the {have:,} designs of {args.designs_from}"
    else:
        cols = random_columns(max(args.designs, args.small_designs), np.random.default_rng(args.seed))
        source = "random designs"
    warm = {k: v[:64] for k, v in cols.items()}
    print(f"mix {mix.name} ({len(mix.scenarios)} scenarios), {source}, best of {args.repeat} runs "
          f"(CPU time of this process; wall time in brackets)")
    rates = {}
    for kernel in (("numba", "numpy") if args.kernel == "both" else (args.kernel,)):
        use_kernel(kernel)
        ready = perf.kernel_cache_ready()
        w0, c0 = time.perf_counter(), time.process_time()
        evaluate(DesignArrays.from_columns(warm, tech), mix, tech)  # warm caches (and load or compile the kernel)
        first = f"first call {time.process_time() - c0:.2f} s CPU [wall {time.perf_counter() - w0:.2f} s]"
        if kernel == "numba":
            first += " (numba import + " + ("cache load)" if ready else "compile: no cache)")
        print(f"[{kernel}] {first}")
        for chunk in (int(c) for c in args.chunks.split(",")):
            n = args.designs if chunk >= 10_000 else args.small_designs
            best = min((run(cols, n, chunk, mix, tech) for _ in range(args.repeat)),
                       key=lambda r: r["arrays_cpu"] + r["eval_cpu"])
            cpu = best["arrays_cpu"] + best["eval_cpu"]
            rate = rates[kernel, chunk] = n / cpu
            target = f"target {TARGETS[chunk]:,}: {rate / TARGETS[chunk]:.2f}x; " if chunk in TARGETS else ""
            print(f"[{kernel}] chunks of {chunk:>6,}: {n:,} designs: DesignArrays {best['arrays_cpu']:6.2f} s, "
                  f"evaluate {best['eval_cpu']:6.2f} s -> {rate:9,.0f} designs/s [wall {n / best['wall']:,.0f}/s]; "
                  f"{target}feasible {best['feasible'] / n:.1%}")
            if args.parts:
                p = part_times(cols, n, chunk, tech, args.repeat)
                print("    per call (CPU ms): " + ", ".join(f"{k} {v:.3f}" for k, v in p.items()))
            if args.breakdown:
                parts = breakdown(cols, n, chunk, mix, tech)
                total = sum(parts.values())
                print("    where the time goes (CPU ms per 1,000 designs): " + ", ".join(
                    f"{k} {v / n * 1e6:.1f} ({v / total:.0%})" for k, v in parts.items()))
    if args.print_rates:
        import dse
        print(RATES + json.dumps({"dse": dse.__file__, **{f"{k}:{c}": r for (k, c), r in rates.items()}}))
    if args.kernel == "both":
        print("compiled / numpy: " + ", ".join(f"chunks of {c:,} {rates['numba', c] / rates['numpy', c]:.2f}x"
                                               for c in sorted({c for _, c in rates}, reverse=True)))


def against(args) -> None:
    """`--against`: this benchmark (the options of `args`) in rounds, each a process on this checkout and one on
    `args.against` (its `dse` imported first: PYTHONPATH), one after the other; prints the ratios."""
    from study_speed import machine_load  # (this directory's)

    other = Path(args.against).resolve()
    skip = {"against", "rounds", "print_rates", "breakdown", "parts"}
    flags = [x for k, v in vars(args).items() if k not in skip and v is not None
             for x in (f"--{k.replace('_', '-')}", str(v))]
    print(f"this checkout {ROOT} against {other}: {args.rounds} rounds, options {' '.join(flags)}")
    print(f"machine at the start: {machine_load()}")
    got: dict[str, list[dict]] = {"this": [], "other": []}
    for r in range(args.rounds):
        for who, root in (("this", ROOT), ("other", other)):
            env = {**os.environ, "PYTHONPATH": str(root)}
            out = subprocess.run([sys.executable, __file__, *flags, "--print-rates"], env=env, capture_output=True,
                                 text=True, check=True).stdout
            rates = json.loads(next(x for x in out.splitlines() if x.startswith(RATES))[len(RATES):])
            assert Path(rates.pop("dse")).resolve().is_relative_to(root), f"{who}: dse not imported from {root}"
            got[who].append(rates)
            print(f"round {r + 1} {who:>5}: " + ", ".join(f"{k} {v:,.0f}/s" for k, v in rates.items()))
    print(f"machine at the end: {machine_load()}")
    for key in got["this"][0]:
        ratio = np.array([a[key] / b[key] for a, b in zip(got["this"], got["other"])])
        print(f"{key}: this / other median {np.median(ratio):.3f}x, min {ratio.min():.3f}, max {ratio.max():.3f} "
              f"({', '.join(f'{x:.3f}' for x in ratio)})")


if __name__ == "__main__":
    main()
