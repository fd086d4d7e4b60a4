"""Batch-1 decode and prefill of a 7B model on every catalog device with off-chip memory, one chip each.

    python benchmarks/device_sweep.py [--software graph[,tuned,...]] [--model Llama-2-7B] [--prompt-len 512]
                                      [--output-len 128] [--formats fp16,q4_0] [--tags gpu,lpddr] [--json]
    python benchmarks/device_sweep.py --cnn ResNet-50 [--batch 1] [--precision int8] [--software tuned] [--tags ...]

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
With `--cnn MODEL` (e.g. `--cnn ResNet-50`) it sweeps one forward pass of a CNN / vision model at `--batch`
(default 1) instead, on every catalog device (SRAM-only chips included), one chip each, at `--precision` (default
int8, what MLPerf's ResNet-50 runs; a chip without it runs the best supported precision, as the model does). Per
device and stack: latency (ms) and images/s of that batch, the bound of the pass (the `dse roofline` bound of the
operators holding most of its time), its time split into compute / off-chip memory / SRAM / overhead (ms, summed
over the operators; each operator's time is the larger of its roofs plus its overhead, so the parts add to more
than the latency when roofs overlap), the share of the published peak the pass sustains (FLOPs / latency / peak),
where the weights live, and the layer-pipeline period for chips that run a CNN as a spatial layer pipeline
(chip.layer_pipeline). No measured values are printed: it shows the cross-device picture the model gives.

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
from dse.workloads.scenarios import adhoc_scenario, load_scenario

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


def cnn_devices(tags: set[str] | None = None) -> list[str]:
    """Catalog names of every device (SRAM-only chips included), optionally only those carrying one of `tags`."""
    return [n for n in list_catalog() if not tags or tags & set(load_catalog_design(n).tags or ())]


def cnn_sweep(names: list[str], software: str, model: str, batch: int, precision: str) -> list[dict]:
    """One row per device: one forward pass of `batch` images of `model` on one chip, its bound and time split."""
    sc = load_scenario({"name": "cnn", "model": model, "kind": "cnn", "batch": batch, "precision": precision,
                        "max_chips": 1})
    cols = dse.evaluate_designs(names, scenario=sc, software=software)
    rows = []
    for i, name in enumerate(names):
        row = {"device": name, "software": software, "model": model, "batch": batch,
               "feasible": bool(cols["cnn.feasible"][i]), "reason": str(cols["cnn.reason"][i])}
        if row["feasible"]:
            info = operator_breakdown(load_catalog_design(name), sc, software=software)
            ops = info["operators"]
            lat = float(cols["cnn.latency_ms"][i])
            parts = {c: sum(r[f"{c}_s"] for r in ops) * 1e3 for c in ("compute", "memory", "sram", "overhead")}
            pipe = info["layer_pipeline"]
            flops = sum(r["flops"] for r in ops) * (batch if pipe else 1)  # a pipeline's table is one image
            row.update(latency_ms=lat, images_per_s=batch * 1e3 / lat, bound=step_bound(ops, "inference"),
                       **{f"{c}_ms": v for c, v in parts.items()}, compute_precision=info["compute_precision"],
                       peak_fraction=(flops / (lat * 1e-3) / (info["peak_tflops"] * 1e12)
                                      if info["peak_tflops"] > 0 else float("nan")), weights=info["weights"],
                       period_us=pipe["period_ms"] * 1e3 if pipe else None)
        rows.append(row)
    return rows


def print_cnn_table(rows: list[dict]) -> None:
    head = (f"{'device':22s} {'stack':6s} {'prec':5s} {'lat ms':>8s} {'img/s':>8s} {'bound':>8s} {'compute':>8s} "
            f"{'memory':>8s} {'sram':>8s} {'ovh':>8s} {'% peak':>6s} {'weights':15s} {'period us':>9s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        if not r["feasible"]:
            print(f"{r['device']:22s} {r['software']:6s} infeasible: {r['reason']}")
            continue
        per = f"{r['period_us']:9.2f}" if r["period_us"] is not None else f"{'-':>9s}"
        print(f"{r['device']:22s} {r['software']:6s} {r['compute_precision']:5s} {r['latency_ms']:8.3f} "
              f"{r['images_per_s']:8.0f} {r['bound']:>8s} {r['compute_ms']:8.3f} {r['memory_ms']:8.3f} "
              f"{r['sram_ms']:8.3f} {r['overhead_ms']:8.3f} {100 * r['peak_fraction']:6.1f} {r['weights']:15s} {per}")


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
    ap.add_argument("--cnn", default=None, metavar="MODEL", help="sweep one forward pass of this CNN / vision "
                    "model (e.g. ResNet-50) on every catalog device instead of LLM decode and prefill")
    ap.add_argument("--batch", type=int, default=1, help="images per forward pass with --cnn")
    ap.add_argument("--precision", default="int8", help="precision with --cnn (a scenario precision string)")
    a = ap.parse_args(argv)
    stacks = a.software.split(",") if a.software else [default_class()]
    if a.cnn:
        names = cnn_devices(set(a.tags.split(",")) if a.tags else None)
        rows = [r for s in stacks for r in cnn_sweep(names, s, a.cnn, a.batch, a.precision)]
        if a.json:
            json.dump({"model": a.cnn, "batch": a.batch, "precision": a.precision, "rows": rows}, sys.stdout, indent=1)
            print()
        else:
            print(f"{a.cnn}, batch {a.batch}, {a.precision}, one chip each")
            print_cnn_table(rows)
        return 0
    formats = a.formats.split(",")
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        ap.error(f"--formats: unknown {bad}; choose from {list(FORMATS)}")
    names = devices(set(a.tags.split(",")) if a.tags else None)
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
