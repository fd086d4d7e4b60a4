"""Batch-1 decode and prefill of a 7B model on every catalog device with off-chip memory, one chip each.

    python benchmarks/device_sweep.py [--software graph[,tuned,...]] [--model Llama-2-7B] [--prompt-len 512]
                                      [--output-len 128] [--formats fp16,q4_0] [--tags gpu,lpddr] [--json]

For each device (catalog entries whose memory is not `none`; `--tags` keeps those carrying any of the tags) and
each weight format (`fp16`: 16-bit weights; `q4_0`: llama.cpp's 4-bit blocks of 32 with an fp16 scale), under each
software stack (`--software`, default the default stack), it prints:
  - decode: TPOT (ms) and tokens/s, the bound of the step (memory / compute / overhead / sram / comm: the bound
    of the operators holding most of the step's time, as `dse roofline` labels them), the achieved fraction of
    the published memory bandwidth (off-chip bytes of one decode step / TPOT / bandwidth), and the share of the
    step that is overhead (`ovh %`: launch queue, kernel gaps; a stack that launches kernels one by one from the
    host can hide the memory time under its launch floor while the operators stay labelled memory-bound);
  - prefill: TTFT (ms) of one `--prompt-len`-token prompt and prompt tokens/s, with its bound;
  - per stack and format: the Spearman rank correlation of predicted decode speed (1 / TPOT) with memory
    bandwidth over the devices, and the devices whose decode is not memory-bound.
Everything comes from the public Python API (`dse.evaluate_designs` for the metrics, `dse.evaluate.
operator_breakdown` for the bounds and bytes), not from the CLI's text.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict

import numpy as np

import dse
from dse.catalog import list_catalog, load_catalog_design
from dse.evaluate import operator_breakdown
from dse.model.calibration import default_class
from dse.workloads.scenarios import adhoc_scenario

FORMATS = {"fp16": None, "q4_0": "q4_0"}  # label -> `weight_format` of adhoc_scenario (None: 16-bit weights)


def devices(tags: set[str] | None = None) -> list[str]:
    """Catalog names of the devices with off-chip memory (optionally only those carrying one of `tags`)."""
    out = []
    for name in list_catalog():
        d = load_catalog_design(name)
        if d.chip.memory == "none" or d.derived()["mem_bw_tbps"] <= 0:
            continue
        if tags and not tags & set(d.tags or ()):
            continue
        out.append(name)
    return out


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of `x`, ties sharing their mean rank (the ranking Spearman's coefficient uses)."""
    x = np.asarray(x, float)
    order = np.argsort(x, kind="stable")
    r = np.empty(len(x))
    r[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tie = x == v
        r[tie] = r[tie].mean()
    return r


def spearman(x, y) -> float:
    """Spearman rank correlation of `x` and `y` (Pearson correlation of their ranks); nan below 3 points."""
    if len(x) < 3:
        return float("nan")
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def overhead_share(rows: list[dict], phase: str) -> float:
    """Share of a phase's time that is per-step / per-kernel overhead (launch queue, kernel gaps, fill), not
    compute, memory, SRAM or communication: the operators' `overhead` components over their total time."""
    total = sum(r["time_s"] for r in rows if r["phase"] == phase)
    return sum(r["overhead_s"] for r in rows if r["phase"] == phase) / total if total > 0 else 0.0


def step_bound(rows: list[dict], phase: str) -> str:
    """The bound of a phase: the `dse roofline` bound of the operators that hold most of its time."""
    time = defaultdict(float)
    for r in rows:
        if r["phase"] == phase:
            time[r["bound"]] += r["time_s"]
    return max(time, key=time.get) if time else "-"


def sweep(names: list[str], software: str, model: str, prompt_len: int, output_len: int,
          formats: list[str]) -> list[dict]:
    """One row per (device, format): decode and prefill time, bound, achieved bandwidth fraction."""
    rows = []
    for fmt in formats:
        sc = adhoc_scenario(model=model, batch=1, prompt_len=prompt_len, output_len=output_len, max_chips=1,
                            weight_format=FORMATS[fmt])
        cols = dse.evaluate_designs(names, scenario=sc, software=software)
        for i, name in enumerate(names):
            design = load_catalog_design(name)
            bw_tbps = float(design.derived()["mem_bw_tbps"])
            row = {"device": name, "software": software, "format": fmt, "mem_bw_tbps": bw_tbps,
                   "memory": design.chip.memory, "feasible": bool(cols["adhoc.feasible"][i]),
                   "reason": str(cols["adhoc.reason"][i])}
            if row["feasible"]:
                tpot, ttft = float(cols["adhoc.tpot_ms"][i]), float(cols["adhoc.ttft_ms"][i])
                info = operator_breakdown(design, sc, software=software)
                ops = info["operators"]
                dec_bytes = sum(r["offchip_bytes"] for r in ops if r["phase"] == "decode")
                row.update(tpot_ms=tpot, decode_tok_s=1e3 / tpot, ttft_ms=ttft, prefill_tok_s=prompt_len * 1e3 / ttft,
                           decode_bound=step_bound(ops, "decode"), prefill_bound=step_bound(ops, "prefill"),
                           decode_overhead_share=overhead_share(ops, "decode"), decode_offchip_gb=dec_bytes / 1e9,
                           bw_fraction=dec_bytes / (tpot * 1e-3) / (bw_tbps * 1e12),
                           weights=info["weights"], compute_precision=info["compute_precision"])
            rows.append(row)
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Per (stack, format): Spearman of decode speed with memory bandwidth, and non-memory-bound decodes."""
    out = []
    for key in sorted({(r["software"], r["format"]) for r in rows}):
        ok = [r for r in rows if (r["software"], r["format"]) == key and r["feasible"]]
        rho = spearman([r["mem_bw_tbps"] for r in ok], [r["decode_tok_s"] for r in ok])
        out.append({"software": key[0], "format": key[1], "devices": len(ok), "spearman_decode_vs_bw": rho,
                    "not_memory_bound": [r["device"] for r in ok if r["decode_bound"] != "memory"]})
    return out


def print_table(rows: list[dict], summ: list[dict]) -> None:
    head = (f"{'device':22s} {'stack':6s} {'fmt':5s} {'BW TB/s':>7s} {'TPOT ms':>8s} {'tok/s':>7s} {'decode':>8s} "
            f"{'BW frac':>7s} {'ovh %':>5s} {'TTFT ms':>8s} {'pp tok/s':>8s} {'prefill':>8s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        if not r["feasible"]:
            print(f"{r['device']:22s} {r['software']:6s} {r['format']:5s} {r['mem_bw_tbps']:7.3f}  infeasible: "
                  f"{r['reason']}")
            continue
        print(f"{r['device']:22s} {r['software']:6s} {r['format']:5s} {r['mem_bw_tbps']:7.3f} {r['tpot_ms']:8.2f} "
              f"{r['decode_tok_s']:7.1f} {r['decode_bound']:>8s} {r['bw_fraction']:7.2f} "
              f"{100 * r['decode_overhead_share']:5.0f} {r['ttft_ms']:8.1f} "
              f"{r['prefill_tok_s']:8.0f} {r['prefill_bound']:>8s}")
    print()
    for s in summ:
        nb = ", ".join(s["not_memory_bound"]) or "none"
        print(f"{s['software']} {s['format']}: Spearman(decode tok/s, memory BW) = {s['spearman_decode_vs_bw']:.3f} "
              f"over {s['devices']} devices; decode not memory-bound: {nb}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--software", default=None, help="comma-separated software stacks (`dse software`); "
                    "default: the default stack")
    ap.add_argument("--model", default="Llama-2-7B")
    ap.add_argument("--prompt-len", type=int, default=512)
    ap.add_argument("--output-len", type=int, default=128)
    ap.add_argument("--formats", default="fp16,q4_0", help=f"comma-separated, of {', '.join(FORMATS)}")
    ap.add_argument("--tags", default=None, help="keep devices carrying any of these catalog tags (comma-separated)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    a = ap.parse_args(argv)
    formats = a.formats.split(",")
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        ap.error(f"--formats: unknown {bad}; choose from {list(FORMATS)}")
    names = devices(set(a.tags.split(",")) if a.tags else None)
    stacks = a.software.split(",") if a.software else [default_class()]
    rows = [r for s in stacks for r in sweep(names, s, a.model, a.prompt_len, a.output_len, formats)]
    summ = summary(rows)
    if a.json:
        json.dump({"model": a.model, "prompt_len": a.prompt_len, "rows": rows, "summary": summ}, sys.stdout, indent=1)
        print()
    else:
        print(f"{a.model}, batch 1, prompt {a.prompt_len}, output {a.output_len}, one chip each")
        print_table(rows, summ)
    return 0


if __name__ == "__main__":
    sys.exit(main())
