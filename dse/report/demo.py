"""Synthetic run folders and operator breakdowns with the real column names, for tests and offline demos.

Not a model: numbers are shaped like a study's (a cost/throughput/latency trade-off, knobs, feasibility)
so that every dashboard view can be built and looked at before, or without, a real study.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from dse.model import perf

OBJECTIVES = [
    {"metric": "mix.throughput", "direction": "maximize"},
    {"metric": "system_cost_usd", "direction": "minimize"},
    {"metric": "local_llm.tpot_ms", "direction": "minimize"},
]
SCENARIOS = ("local_llm", "datacenter_llm", "vision_cnn")


def synthetic_results(n: int, seed: int = 0) -> pl.DataFrame:
    """A results table shaped like `dse run` output (knobs, metrics, feasible, reason, pareto)."""
    from dse.pareto import nondominated_mask

    rng = np.random.default_rng(seed)
    node = rng.choice(["n7", "n5", "n3"], n)
    memory = rng.choice(["hbm3", "hbm3e", "lpddr5x", "none"], n, p=[0.35, 0.35, 0.15, 0.15])
    cores = np.round(np.exp(rng.uniform(np.log(16), np.log(256), n))).astype(np.int64)
    sram = np.exp(rng.uniform(np.log(16), np.log(1024), n))
    stacks = np.where(memory == "none", 0, rng.integers(1, 9, n))
    chips = rng.choice([1, 2, 4, 8, 16, 64], n)
    clock = rng.uniform(0.8, 2.0, n)
    node_speed = np.select([node == "n7", node == "n5"], [1.0, 1.5], 2.1)
    bw = np.select([memory == "hbm3", memory == "hbm3e", memory == "lpddr5x"], [0.8, 1.2, 0.12], 0.0) * stacks
    peak = cores * 128 * 128 * 2 * clock * 1e9 / 1e12 * node_speed / 1.5
    sram_bw = sram * 0.1 * clock
    cost = (cores * 40 * node_speed + sram * 6 + stacks * 900 + 2000) * chips * rng.lognormal(0, 0.15, n)
    eff_bw = np.maximum(bw, np.minimum(sram_bw, 40) * (sram > 400))
    tpot = 16e9 / np.maximum(eff_bw * 1e12 * np.minimum(chips, 8), 1e9) * 1e3 * rng.lognormal(0, 0.1, n)
    thr = np.sqrt(peak * chips) * np.sqrt(np.maximum(eff_bw, 0.05) * chips) * rng.lognormal(0, 0.2, n) / 50
    power = (cores * 2.0 * node_speed + sram * 0.3 + stacks * 30 + 50) * chips
    feasible = (rng.random(n) > 0.1) & (tpot < 400)
    reason = np.where(feasible, "", "weights 130 GiB + KV 1 GiB per chip > memory 80 GiB")
    thr = np.where(feasible, thr, 0.0)
    tpot = np.where(feasible, tpot, 0.0)
    df = pl.DataFrame({
        "trial": np.arange(n, dtype=np.int64),
        "generation": np.arange(n, dtype=np.int64) // 64,
        "chip.process_node": node,
        "chip.cores": cores,
        "chip.clock_ghz": clock,
        "chip.sram_mb": sram,
        "chip.memory": memory,
        "chip.memory_stacks": stacks,
        "system.num_chips": chips,
        "system.topology": np.full(n, "switch"),
        "system_cost_usd": cost,
        "power_w": power,
        "peak_tflops_bf16": peak,
        "mem_bw_tbps": bw,
        "mem_gb": stacks * 24.0,
        "sram_mb": sram,
        "knee_flop_per_byte": np.where(bw > 0, peak / np.maximum(bw, 1e-9), 0.0),
        "local_llm.tpot_ms": tpot,
        "local_llm.throughput": np.where(feasible, 1e3 / np.maximum(tpot, 1e-9), 0.0),
        "datacenter_llm.throughput": thr * 900,
        "vision_cnn.throughput": thr * 2000,
        "vision_cnn.images_per_s": thr * 2000,
        "mix.throughput": thr,
        "tco_usd_per_mtok": np.where(feasible, cost / np.maximum(thr, 1e-9) / 1e4, 0.0),
        "feasible": feasible,
        "reason": reason,
    })
    Y = np.column_stack([thr, cost, tpot])
    Y[~feasible] = np.nan
    return df.with_columns(pl.Series("pareto", nondominated_mask(Y, [True, False, False])))


def write_run(path: Path | str, n: int = 2000, seed: int = 0, name: str = "demo", sampler: str = "nsga2") -> Path:
    """Write results.parquet, pareto.parquet, summary.json and study.yaml of a synthetic run."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    df = synthetic_results(n, seed)
    df.write_parquet(path / "results.parquet")
    df.filter(pl.col("pareto")).write_parquet(path / "pareto.parquet")
    study = {"name": name, "mix": "balanced", "objectives": OBJECTIVES, "sampler": {"kind": sampler},
             "budget": {"trials": n}, "seed": seed}
    (path / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    (path / "summary.json").write_text(json.dumps({"study": name, "trials": n, "front_size": int(df["pareto"].sum())}))
    return path


def synthetic_operators(design: str, peak_tflops: float, mem_tbps: float, sram_tbps: float,
                        scenario: str, seed: int = 0) -> pl.DataFrame:
    """Operator rows as `operator_breakdown` returns them, on a roofline consistent with the given roofs."""
    rng = np.random.default_rng(abs(hash((design, scenario, seed))) % 2**32)
    names = ["qkv_proj", "attn_score", "attn_context", "out_proj", "mlp_up", "mlp_down", "rmsnorm", "allreduce"]
    kinds = ["gemm", "attn_score", "attn_context", "gemm", "gemm", "gemm", "norm", "allreduce"]
    intensity = np.exp(rng.uniform(np.log(0.5), np.log(2000), len(names)))
    bw = mem_tbps if mem_tbps > 0 else sram_tbps
    attainable = np.minimum(peak_tflops, intensity * bw) * rng.uniform(0.4, 0.95, len(names))
    flops = np.exp(rng.uniform(np.log(1e9), np.log(1e12), len(names)))
    time_s = flops / (attainable * 1e12)
    compute_s = flops / (peak_tflops * 1e12)
    memory_s = flops / intensity / max(mem_tbps * 1e12, 1.0) if mem_tbps > 0 else np.zeros(len(names))
    sram_s = flops / intensity / (sram_tbps * 1e12) * 0.3
    comm_s = np.where(np.array(kinds) == "allreduce", time_s, 0.0)
    overhead_s = np.full(len(names), 2e-6)
    parts = {"compute": compute_s, "memory": memory_s, "sram": sram_s, "comm": comm_s, "overhead": overhead_s}
    parts = {f: parts.get(f, np.zeros(len(names))) for f in perf.TIME_FIELDS.values()}  # no wafer: no mesh time
    bound = np.array(perf.BOUNDS)[np.argmax(np.stack(list(parts.values())), axis=0)]
    return pl.DataFrame({
        "name": names, "kind": kinds, "flops": flops, "bytes": flops / intensity, "intensity": intensity,
        "attainable_tflops": attainable, "time_s": time_s + overhead_s, "bound": bound,
        **{f"{f}_s": t for f, t in parts.items()},
    })
