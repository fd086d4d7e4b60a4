"""Units dse shares across layers (the model, workloads, reports): one declaration each, with its source."""

from __future__ import annotations

__all__ = ["MEMORY_GB_BYTES"]

# Bytes in one GB of off-chip memory capacity (a memory technology's `capacity_gb_per_stack`, knob
# `chip.memory_gb_per_stack`, a chip's `mem_gb`, the weight and KV sizes `dse models` prints): capacities are binary, as vendors quote them and as JEDEC defines the prefix for
# semiconductor storage capacity (JESD100B.01 / JEDEC dictionary: giga (G) = 2^30). DRAM dies come in 2^n Gbit,
# so an H100's "80 GB" is 5 x 16 GiB HBM3 stacks (nvidia-smi reports 81,559 MiB of 81,920, recalled, not in the
# reference) and Calculon's A100 system file states its 80 GB as "80 GiB" (llm_perf_models.md §2.5).
# Rates stay decimal (GB/s = 1e9 B/s, TB/s = 1e12 B/s), and $ per GB is per GB of this unit.
# SRAM MB stay decimal (1e6 B, dse.model.perf): their sources mix the two (GPU caches are binary: H100's 50 MB L2
# is 52,428,800 B per CUDA deviceQuery, GA100's 48 MB behind sram_mm2_per_mb_cache; Groq's 230 MB is its 220 MiB
# (20 superlanes x 2 x 5.5 MiB, llm_perf_models.md §3.1) in decimal MB and sets sram_gbps_per_mb; WSE-3's 44 GB is
# 900,000 cores x 48 KiB in decimal GB, recalled), so a switch would restate catalog entries and the
# density/bandwidth figures together, not one conversion.
MEMORY_GB_BYTES = 2 ** 30
