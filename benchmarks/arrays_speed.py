"""Cost of one `DesignArrays.from_columns` call (knob columns -> per-design arrays) at 100 and 10,000 designs.

    python benchmarks/arrays_speed.py [--sizes 100,10000] [--repeat 20] [--profile N] [--dump OUT.pkl]
                                      [--against OLD/dse/model/arrays.py]

A study calls the model once per generation of ~100 designs, so the fixed cost per call matters as much as the
cost per design. Prints, per size, the best CPU ms per call over `--repeat` calls (the machine may be shared),
the µs per design and the ratio of per-call cost between the sizes. Designs are random ones of
search_spaces/full.yaml (benchmarks/model_speed.py's `random_columns`). `--profile N` prints cProfile's top
functions for one call of N designs; `--dump OUT.pkl` pickles every field of the arrays built for 2,000 random
designs plus a set of bad ones (reasons included), to compare two versions bit for bit (`--compare A B`).
`--against FILE` loads another version of arrays.py (e.g. `git show main:dse/model/arrays.py > /tmp/old.py`) beside
this one and times both, call for call interleaved, so a shared machine's load hits both alike; prints old/new.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from dataclasses import fields
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from dse.model.arrays import DesignArrays  # noqa: E402
from dse.model.technology import default_technology  # noqa: E402
from model_speed import random_columns  # noqa: E402


def time_call(cols: dict, tech, repeat: int) -> float:
    """Best CPU seconds of one from_columns call over `repeat` calls."""
    best = float("inf")
    for _ in range(repeat):
        c0 = time.process_time()
        DesignArrays.from_columns(cols, tech)
        best = min(best, time.process_time() - c0)
    return best


def _time_old(cls, cols: dict, tech) -> float:
    c0 = time.process_time()
    cls.from_columns(cols, tech)
    return time.process_time() - c0


def bad_columns(n: int, rng: np.random.Generator) -> dict:
    """Random designs with every kind of bad entry mixed in (unknown names, out-of-range and textual numbers,
    rule breaks, precision lists with unknown names), so a dump covers the reasons."""
    cols = {k: np.asarray(v, dtype=object) for k, v in random_columns(n, rng).items()}
    pick = lambda: rng.random(n) < 0.1  # noqa: E731
    cols["chip.process_node"] = np.where(pick(), "n55", cols["chip.process_node"])
    cols["chip.memory"] = np.where(pick(), "hbm9", cols["chip.memory"])
    cols["chip.link"] = np.where(pick(), "none", cols["chip.link"])
    cols["chip.cores"] = np.where(pick(), -3, cols["chip.cores"])
    cols["chip.clock_ghz"] = np.where(pick(), 9.5, cols["chip.clock_ghz"])
    cols["chip.sram_mb"] = np.where(pick(), "lots", cols["chip.sram_mb"])
    cols["chip.memory_stacks"] = np.where(pick(), 0, cols["chip.memory_stacks"])
    cols["chip.dies"] = np.where(pick(), 70, np.where(pick(), 3, None))
    cols["chip.allow_chiplets"] = np.where(pick(), False, True)
    prec = np.array(["bf16,fp8", "bf16,fp9", "", "int8", "fp16,bf16,fp8,int8,fp4"], dtype=object)
    cols["chip.precisions"] = prec[rng.integers(0, len(prec), n)]
    cols["chip.precision_speedup.fp8"] = np.where(pick(), 4.0, None)
    cols["system.topology"] = np.where(pick(), "mesh", "ring")
    cols["chip.sparsity_2to4"] = np.where(pick(), "yes", "no")
    return cols


def dump(path: str) -> None:
    tech = default_technology()
    out = {}
    for tag, cols in (("rnd", random_columns(2000, np.random.default_rng(7))),
                      ("bad", bad_columns(2000, np.random.default_rng(11)))):
        arr = DesignArrays.from_columns(cols, tech)
        out[tag] = {f.name: getattr(arr, f.name) for f in fields(arr) if f.name != "tech"}
    with open(path, "wb") as fh:
        pickle.dump(out, fh)
    print("dumped", path, "bad rows:", int((~out["bad"]["valid"]).sum()), "of 2000")


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and \
            (a.dtype == object and all(x == y for x, y in zip(a.tolist(), b.tolist()))
             or a.dtype != object and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
    return a == b


def compare(pa: str, pb: str) -> None:
    a, b = (pickle.load(open(p, "rb")) for p in (pa, pb))
    diff = [f"{t}/{k}" for t in a for k in a[t] if not _same(a[t][k], b[t].get(k))]
    print("IDENTICAL" if not diff else "DIFFER: " + ", ".join(diff))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,10000")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--profile", type=int, default=0)
    ap.add_argument("--dump")
    ap.add_argument("--compare", nargs=2)
    ap.add_argument("--against")
    a = ap.parse_args()
    if a.dump:
        return dump(a.dump)
    if a.compare:
        return compare(*a.compare)
    tech = default_technology()
    sizes = [int(s) for s in a.sizes.split(",")]
    big = random_columns(max(sizes), np.random.default_rng(1))
    if a.profile:
        import cProfile
        import pstats
        cols = {k: v[:a.profile] for k, v in big.items()}
        DesignArrays.from_columns(cols, tech)
        pr = cProfile.Profile()
        pr.enable()
        for _ in range(20):
            DesignArrays.from_columns(cols, tech)
        pr.disable()
        pstats.Stats(pr).sort_stats("tottime").print_stats(25)
        return
    print(f"load {open('/proc/loadavg').read().split()[0]}")
    if a.against:
        import importlib.util
        spec = importlib.util.spec_from_file_location("dse.model._arrays_old", a.against)
        old = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(old)
        for n in sizes:
            cols = {k: v[:n] for k, v in big.items()}
            best = {"old": float("inf"), "new": float("inf")}
            for _ in range(a.repeat * 10 if n <= 1000 else a.repeat):
                for tag, cls in (("old", old.DesignArrays), ("new", DesignArrays)):
                    best[tag] = min(best[tag], time_call(cols, tech, 1) if cls is DesignArrays else
                                    _time_old(cls, cols, tech))
            print(f"{n:>7} designs: old {best['old'] * 1e3:8.3f} ms, new {best['new'] * 1e3:8.3f} ms per call, "
                  f"old/new {best['old'] / best['new']:.2f}x")
        return
    per = {}
    for n in sizes:
        cols = {k: v[:n] for k, v in big.items()}
        DesignArrays.from_columns(cols, tech)  # warm caches
        s = time_call(cols, tech, a.repeat * 10 if n <= 1000 else a.repeat)
        per[n] = s
        print(f"{n:>7} designs: {s * 1e3:8.3f} ms per call, {s / n * 1e6:7.3f} us per design")
    if len(sizes) > 1:
        lo, hi = min(sizes), max(sizes)
        print(f"ratio per call {hi}/{lo}: {per[hi] / per[lo]:.1f}x for {hi / lo:.0f}x designs")


if __name__ == "__main__":
    main()
