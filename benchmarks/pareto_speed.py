"""Times dse.pareto.nondominated_mask (and hypervolume) on 10⁴–10⁶ points, against moocore when installed.

Run: python benchmarks/pareto_speed.py [--max-n 1000000] [--m 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dse.pareto import hypervolume, nondominated_mask


def concave(n: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """10 % of points on a concave front (unit sphere, minimisation), the rest scaled up to 2× behind it."""
    S = np.abs(rng.standard_normal((n, m)))
    S /= np.linalg.norm(S, axis=1, keepdims=True)
    k = n // 10
    S[k:] *= 1 + rng.random((n - k, 1))
    return S


def best_of(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--max-n", type=int, default=1_000_000)
    ap.add_argument("--m", type=int, nargs="+", default=[2, 3])
    args = ap.parse_args()
    try:
        import moocore
    except ImportError:
        moocore = None
    rng = np.random.default_rng(0)
    print(f"{'m':>2} {'data':8} {'n':>9} {'front':>7} {'dse s':>8} {'moocore s':>10} {'ratio':>6}")
    for m in args.m:
        for name in ("uniform", "concave"):
            n = 10_000
            while n <= args.max_n:
                Y = rng.random((n, m)) if name == "uniform" else concave(n, m, rng)
                repeat = 3 if n <= 100_000 else 1
                mask = nondominated_mask(Y)
                ours = best_of(lambda: nondominated_mask(Y), repeat)
                line = f"{m:>2} {name:8} {n:>9} {int(mask.sum()):>7} {ours:8.3f}"
                if moocore is not None:
                    theirs = best_of(lambda: moocore.is_nondominated(Y, keep_weakly=True), repeat)
                    same = bool((moocore.is_nondominated(Y, keep_weakly=True) == mask).all())
                    line += f" {theirs:10.3f} {ours / theirs:6.1f}" + ("" if same else "  MISMATCH")
                print(line, flush=True)
                n *= 10
    for m, k in ((2, 10_000), (3, 1000), (3, 5000), (4, 300)):
        F = concave(k * 10, m, rng)[:k]
        t = time.perf_counter()
        hv = hypervolume(F, np.full(m, 1.1))
        ours = time.perf_counter() - t
        line = f"hypervolume m={m} front={k}: {ours:.3f} s"
        if moocore is not None:
            t = time.perf_counter()
            ref_hv = moocore.hypervolume(F, ref=np.full(m, 1.1))
            line += f" (moocore {time.perf_counter() - t:.4f} s, rel. diff {abs(hv - ref_hv) / ref_hv:.1e})"
        print(line, flush=True)


if __name__ == "__main__":
    main()
