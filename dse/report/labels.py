"""Column names safe for Vega-Lite (no dots) and human axis titles with units for metrics and knobs."""

from __future__ import annotations

# suffix → unit, checked in order (longest first where they overlap)
_UNITS = [
    ("usd_per_mtok", "US$ per 10⁶ tokens"),
    ("tokens_per_s_per_user", "tokens/s per user"),
    ("tokens_per_s", "tokens/s"),
    ("images_per_s", "images/s"),
    ("energy_j_per_unit", "J per token or image"),
    ("_usd", "US$"),
    ("_ms", "ms"),
    ("_mm2", "mm²"),
    ("_w", "W"),
    ("_gb", "GB"),
    ("_mb", "MB"),
    ("_tbps", "TB/s"),
    ("_gbps", "GB/s"),
    ("_ghz", "GHz"),
    ("tflops_bf16", "TFLOP/s"),
    ("flop_per_byte", "FLOP/byte"),
]

_KNOWN = {
    "mix.throughput": "Mix throughput (× reference design, geometric mean)",
    "system_cost_usd": "System cost (US$)",
    "chip_cost_usd": "Chip cost (US$)",
    "power_w": "System power (W)",
    "tdp_w": "Chip TDP (W)",
    "tco_usd_per_mtok": "TCO (US$ per 10⁶ tokens)",
    "die_area_mm2": "Die area (mm²)",
    "peak_tflops_bf16": "Peak bf16 (TFLOP/s per chip)",
    "mem_bw_tbps": "Off-chip bandwidth (TB/s per chip)",
    "mem_gb": "Off-chip memory (GB per chip)",
    "sram_mb": "SRAM (MB per chip)",
    "knee_flop_per_byte": "Roofline knee (FLOP/byte)",
    "chip.process_node": "Process node",
    "chip.memory": "Off-chip memory",
    "chip.memory_stacks": "Memory stacks (count)",
    "chip.cores": "Cores (count)",
    "chip.sram_mb": "SRAM (MB)",
    "chip.clock_ghz": "Clock (GHz)",
    "chip.links": "Links (count)",
    "system.num_chips": "Chips (count)",
    "system.topology": "Topology",
}


def safe(name: str) -> str:
    """Vega-Lite reads dots as nested fields: `chip.process_node` → `chip__process_node`."""
    return name.replace(".", "__").replace("[", "_").replace("]", "_").replace(":", "_")


def unit_of(metric: str, images: bool = False) -> str | None:
    """Unit of a metric column from its name; per-scenario `throughput` is images/s for CNN scenarios."""
    last = metric.rsplit(".", 1)[-1]
    if last == "throughput" and metric != "mix.throughput":
        return "images/s" if images else "tokens/s"
    for suffix, unit in _UNITS:
        if last.endswith(suffix):
            return unit
    return None


def title_of(metric: str, overrides: dict[str, str] | None = None, images: bool = False) -> str:
    """Axis title with unit, e.g. `local_llm.tpot_ms` → "local_llm: time per output token (ms)"."""
    if overrides and metric in overrides:
        return overrides[metric]
    if metric in _KNOWN:
        return _KNOWN[metric]
    scenario, _, last = metric.rpartition(".")
    words = {
        "tpot_ms": "time per output token",
        "ttft_ms": "time to first token",
        "latency_ms": "latency",
        "throughput": "throughput",
        "tokens_per_s": "tokens/s",
        "images_per_s": "images/s",
        "energy_j_per_unit": "energy per unit",
        "usd_per_mtok": "cost per 10⁶ tokens",
    }.get(last, last.replace("_", " "))
    unit = unit_of(metric, images)
    text = f"{scenario}: {words}" if scenario else words
    if unit and unit not in text:
        text += f" ({unit})"
    elif not unit and not scenario:
        text = text[:1].upper() + text[1:]
    return text
