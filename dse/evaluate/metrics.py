"""The metric registry: every metric `evaluate` returns, declared once.

Each `Metric` carries its name, unit, better direction, label, description, scope (design-level, per
scenario, or over the mix), dtype and the scenario kinds it applies to. The evaluate output columns,
`metric_names(mix)`, `metric_info(column)`, dashboard labels and the rows of `dse evaluate` all derive
from `METRICS`. Adding a per-scenario metric is one entry here plus its computation in the mapping.

Columns: a design metric is named as declared (`system_cost_usd`); a per-scenario metric is
`<scenario>.<name>` (`local_llm.tpot_ms`); a mix metric as declared (`mix.throughput`, `feasible`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

Scope = Literal["design", "scenario", "mix"]
Better = Literal["max", "min", "none"]
Dtype = Literal["float", "int", "bool", "str"]
Kind = Literal["llm", "cnn"]
KINDS: tuple[Kind, ...] = ("llm", "cnn")


class Metric(BaseModel):
    """One metric. `unit` is a string, or a mapping scenario kind → unit where it depends on the kind
    (per-scenario throughput is tokens/s for an LLM and images/s for a CNN); "" = a pure number."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    unit: str | dict[str, str] = ""
    better: Better = "none"
    label: str
    description: str
    scope: Scope
    dtype: Dtype = "float"
    kinds: tuple[Kind, ...] = KINDS
    table_row: bool = False  # shown as a row of `dse evaluate` (per-scenario metrics)

    def unit_for(self, kind: str | None = None) -> str:
        """The unit for a scenario kind (None: the LLM unit, or the joined units if they differ)."""
        if isinstance(self.unit, str):
            return self.unit
        if kind is not None:
            return self.unit.get(kind, "")
        units = list(dict.fromkeys(self.unit.values()))
        return units[0] if len(units) == 1 else " or ".join(units)

    @property
    def numeric(self) -> bool:
        """True for float and int metrics: they may be objectives or constraint bounds."""
        return self.dtype in ("float", "int")

    def empty(self, n: int) -> np.ndarray:
        """An (n,) column of this metric's dtype holding its 'no value' (0, False or ""): `np.full`'s array,
        without its Python-level pass (most of its cost at a study's chunk sizes)."""
        if self.dtype != "str":
            return np.zeros(n, NUMPY_DTYPES[self.dtype])
        out = np.empty(n, object)
        out.fill("")
        return out

    def cast(self, values) -> np.ndarray:
        """`values` as this metric's numpy dtype."""
        return np.asarray(values).astype(NUMPY_DTYPES[self.dtype], copy=False)


NUMPY_DTYPES = {"float": np.float64, "int": np.int64, "bool": np.bool_, "str": object}

_LLM: tuple[Kind, ...] = ("llm",)
_CNN: tuple[Kind, ...] = ("cnn",)
_D, _S, _M = "design", "scenario", "mix"

METRICS: tuple[Metric, ...] = (
    # ---- design-level: the hardware, independent of the workload --------------------------------
    Metric(name="die_area_mm2", unit="mm²", better="min", scope=_D, label="die area",
           description="Area of one die (a chiplet design has num_dies of them)."),
    Metric(name="num_dies", dtype="int", scope=_D, label="dies per chip",
           description="Dies per chip package: logic larger than the reticle is split into chiplets."),
    Metric(name="chip_cost_usd", unit="US$", better="min", scope=_D, label="chip build cost",
           description="Build (manufacturing) cost of one chip: dies, memory, packaging and test."),
    Metric(name="system_cost_usd", unit="US$", better="min", scope=_D, label="system cost",
           description="Cost of the whole system: chips, links and switches, boards."),
    Metric(name="tdp_w", unit="W", better="min", scope=_D, label="chip TDP",
           description="Thermal design power of one chip at peak activity (at most its tdp_w cap)."),
    Metric(name="peak_power_w", unit="W", better="min", scope=_D, label="peak system power",
           description="Power of the whole system with every chip at its TDP (sizes power delivery "
                       "and cooling; power_w is what a workload draws)."),
    Metric(name="power_density_w_per_mm2", unit="W/mm²", better="min", scope=_D, label="power density",
           description="Chip TDP over its total die area (cooling limit)."),
    Metric(name="peak_tflops_bf16", unit="TFLOP/s", better="max", scope=_D, label="peak bf16 per chip",
           description="Dense bf16 peak of one chip."),
    Metric(name="mem_bw_tbps", unit="TB/s", better="max", scope=_D, label="off-chip bandwidth per chip",
           description="Off-chip memory bandwidth of one chip."),
    Metric(name="mem_gb", unit="GB", better="max", scope=_D, label="off-chip memory per chip",
           description="Off-chip memory capacity of one chip."),
    Metric(name="sram_mb", unit="MB", better="max", scope=_D, label="SRAM per chip",
           description="On-chip SRAM of one chip."),
    Metric(name="knee_flop_per_byte", unit="FLOP/byte", scope=_D, label="roofline knee",
           description="bf16 peak over off-chip bandwidth: operators below it are memory bound."),
    # ---- per scenario: the best plan (mapping) of each scenario of the mix ----------------------
    Metric(name="feasible", dtype="bool", scope=_S, label="feasible",
           description="The scenario has a plan that fits and meets its SLOs on this design."),
    Metric(name="reason", dtype="str", scope=_S, label="reason",
           description="Why the scenario cannot run on this design ('' when feasible)."),
    Metric(name="throughput", unit={"llm": "tokens/s", "cnn": "images/s"}, better="max", scope=_S,
           label="throughput", description="What the scenario's goal scores: tokens/s (LLM) or images/s (CNN)."),
    Metric(name="ttft_ms", unit="ms", better="min", scope=_S, kinds=_LLM, table_row=True,
           label="time to first token", description="Static batching: the request's whole batch prefilled "
           "through all pipeline stages (at batch 1: one prompt on an idle system). Percentiles under "
           "continuous batching: ttft_p50_ms/ttft_p99_ms."),
    Metric(name="tpot_ms", unit="ms", better="min", scope=_S, kinds=_LLM, table_row=True,
           label="time per output token", description="One decode step of the whole model."),
    Metric(name="tokens_per_s", unit="tokens/s", better="max", scope=_S, kinds=_LLM, table_row=True,
           label="tokens/s", description="Output tokens per second of the whole system (all replicas)."),
    Metric(name="tokens_per_s_per_user", unit="tokens/s per user", better="max", scope=_S, kinds=_LLM,
           table_row=True, label="tokens/s per user", description="Decode speed one request sees: 1 / TPOT."),
    Metric(name="images_per_s", unit="images/s", better="max", scope=_S, kinds=_CNN, table_row=True,
           label="images/s", description="Images per second of the whole system (all replicas)."),
    Metric(name="latency_ms", unit="ms", better="min", scope=_S, table_row=True, label="latency",
           description="Request latency: TTFT + output tokens x TPOT (LLM), one batch (CNN)."),
    Metric(name="energy_j_per_unit", unit={"llm": "J/token", "cnn": "J/image"}, better="min", scope=_S,
           table_row=True, label="energy per unit", description="Dynamic plus static energy per token or image."),
    Metric(name="power_w", unit="W", better="min", scope=_S, table_row=True, label="system power",
           description="Average power of the whole system serving the scenario: the plan's chips at "
                       "static power plus the energy of what each step does (FLOPs, SRAM, off-chip and "
                       "link traffic) per second, idle chips at leakage; a tdp_w cap lowers the clock."),
    Metric(name="usd_per_mtok", unit="US$ per 10⁶ tokens", better="min", scope=_S, kinds=_LLM, table_row=True,
           label="cost per 10⁶ tokens", description="Hourly TCO of the system over its tokens per hour."),
    Metric(name="prefill_share", unit="fraction", better="none", scope=_S, kinds=_LLM, table_row=True,
           label="prefill share", description="Fraction of a replica's time spent prefilling its batch's "
                                               "prompts (the rest decodes): near 1 means prompt-bound."),
    Metric(name="chips_used", dtype="int", scope=_S, table_row=True, label="chips used",
           description="Chips the plan occupies: dp replicas x tp x pp x ep."),
    Metric(name="tp", dtype="int", scope=_S, label="tensor parallelism",
           description="Chips one layer is split over."),
    Metric(name="pp", dtype="int", scope=_S, label="pipeline stages",
           description="Pipeline stages of one replica."),
    Metric(name="dp", dtype="int", scope=_S, label="replicas", description="Data-parallel replicas."),
    Metric(name="ep", dtype="int", scope=_S, label="expert parallelism",
           description="Chips the experts of a MoE model are spread over (1 for dense models)."),
    Metric(name="batch", dtype="int", scope=_S, label="batch",
           description="Sequences (LLM) or images (CNN) one replica serves at a time."),
    Metric(name="weights", dtype="str", scope=_S, table_row=True, label="weights",
           description="Where the weights live: 'sram-resident' or 'weights-streamed'."),
    # request-level serving (scenarios with a `serving:` workload; 0 otherwise): dse.serving.analytic
    # on continuous-batching engines fitted to the chosen plan (dse.evaluate.serving)
    Metric(name="goodput_rps", unit="requests/s", better="max", scope=_S, kinds=_LLM, table_row=True,
           label="goodput", description="Requests/s at the serving workload's offered load that meet "
                                        "its TTFT and TPOT limits (0 when the load saturates the fleet)."),
    Metric(name="max_rate_rps", unit="requests/s", better="max", scope=_S, kinds=_LLM, table_row=True,
           label="max rate in SLO", description="Largest Poisson arrival rate at which every percentile "
                                                "SLO of the serving workload still holds."),
    Metric(name="ttft_p50_ms", unit="ms", better="min", scope=_S, kinds=_LLM, table_row=True,
           label="TTFT p50", description="Median time to first token under the serving workload's load."),
    Metric(name="ttft_p99_ms", unit="ms", better="min", scope=_S, kinds=_LLM, table_row=True,
           label="TTFT p99", description="99th-percentile time to first token under the serving load."),
    Metric(name="tpot_p50_ms", unit="ms", better="min", scope=_S, kinds=_LLM, table_row=True,
           label="TPOT p50", description="Median time per output token under the serving workload's load."),
    Metric(name="tpot_p99_ms", unit="ms", better="min", scope=_S, kinds=_LLM, table_row=True,
           label="TPOT p99", description="99th-percentile time per output token under the serving load."),
    Metric(name="prefill_replicas", dtype="int", scope=_S, kinds=_LLM, table_row=True, label="prefill replicas",
           description="Replicas the mapping gave to the prefill pool of a disaggregated fleet (the rest "
                       "decode); 0 = prefill and decode co-located (or no `disaggregation:` in the workload)."),
    Metric(name="prefill_chips", dtype="int", scope=_S, kinds=_LLM, table_row=True, label="prefill pool chips",
           description="Chips of a separate prefill pool of another design (the workload's "
                       "`disaggregation.prefill_design` or a study's `prefill.*` knobs) the fleet adds to the "
                       "system, which then only decodes; 0 = none."),
    Metric(name="fleet_cost_usd", unit="US$", better="min", scope=_S, kinds=_LLM, table_row=True,
           label="fleet cost", description="Cost of the serving fleet: the system plus a separate prefill "
                                           "pool's replicas (their share of their systems' cost)."),
    Metric(name="fleet_power_w", unit="W", better="min", scope=_S, kinds=_LLM, table_row=True,
           label="fleet power", description="Power of the serving fleet: the system's serving the scenario "
                                            "plus a separate prefill pool's replicas."),
    Metric(name="spec_k", dtype="int", scope=_S, kinds=_LLM, table_row=True, label="draft length",
           description="Speculative tokens drafted per step the mapping chose (0 = none)."),
    Metric(name="cp", dtype="int", scope=_S, kinds=_LLM, table_row=True, label="context parallelism",
           description="Replicas the mapping runs as one context-parallel (ring attention) engine; 1 = none "
                       "(the workload's `context_parallel:` lets it try more)."),
    Metric(name="kv_offload", dtype="int", scope=_S, kinds=_LLM, table_row=True, label="KV offload",
           description="1 when the mapping keeps the prefix cache in host memory (the workload's "
                       "`kv_offload:`; hits bring their KV over the host link), 0 when in device memory."),
    Metric(name="usd_per_mtok_at_slo", unit="US$ per 10⁶ tokens", better="min", scope=_S, kinds=_LLM,
           table_row=True, label="cost per 10⁶ tokens at SLO",
           description="Hourly TCO of the fleet over the output tokens per hour it serves at the largest "
                       "arrival rate that meets every SLO of the serving workload (0 when none does)."),
    Metric(name="tokens_per_s_per_mw_at_slo", unit="tokens/s per MW", better="max", scope=_S, kinds=_LLM,
           table_row=True, label="tokens/s per facility MW at SLO",
           description="Output tokens/s at the largest arrival rate in SLO per MW of facility power (the "
                       "system's power serving the scenario × the technology's PUE)."),
    Metric(name="tokens_per_s_per_rack_kw_at_slo", unit="tokens/s per kW", better="max", scope=_S, kinds=_LLM,
           table_row=True, label="tokens/s per rack kW at SLO",
           description="Output tokens/s at the largest arrival rate in SLO per kW of IT (rack) power: the "
                       "system's power serving the scenario, before cooling and facility overhead."),
    # ---- over the mix ----------------------------------------------------------------------------
    Metric(name="mix.throughput", unit="× reference", better="max", scope=_M, label="mix throughput",
           description="Weighted geometric mean over the scenarios of throughput relative to the "
                       "mix's reference design."),
    Metric(name="tco_usd_per_mtok", unit="US$ per 10⁶ tokens", better="min", scope=_M, kinds=_LLM,
           label="TCO", description="Weighted mean over the LLM scenarios of cost per 10⁶ tokens."),
    Metric(name="power_w", unit="W", better="min", scope=_M, label="system power",
           description="Weighted mean over the scenarios of the system's power serving each (the "
                       "workload power; peak_power_w is the TDP sum)."),
    Metric(name="feasible", dtype="bool", scope=_M, label="feasible",
           description="Every scenario of the mix is feasible."),
    Metric(name="reason", dtype="str", scope=_M, label="reason",
           description="Why the design fails the mix: the first failing scenario's reason ('' when feasible)."),
)

DESIGN: dict[str, Metric] = {m.name: m for m in METRICS if m.scope == "design"}
SCENARIO: dict[str, Metric] = {m.name: m for m in METRICS if m.scope == "scenario"}
MIX: dict[str, Metric] = {m.name: m for m in METRICS if m.scope == "mix"}


class ColumnInfo(BaseModel):
    """What `metric_info` knows of one metric column: the metric, and the scenario for `<scenario>.<name>`."""

    model_config = ConfigDict(frozen=True)

    column: str
    metric: Metric
    scenario: str | None = None
    kind: str | None = None  # the scenario's kind when a mix was given

    @property
    def unit(self) -> str:
        return self.metric.unit_for(self.kind)

    @property
    def numeric(self) -> bool:
        return self.metric.numeric

    @property
    def applies(self) -> bool:
        """False when the metric is always 0 for this scenario's kind (e.g. tpot_ms of a CNN scenario)."""
        return self.kind is None or self.kind in self.metric.kinds

    def parquet_metadata(self) -> dict[str, str]:
        """Column metadata for a results table: unit, better direction, dtype, label, description."""
        m = self.metric
        return {"unit": self.unit, "better": m.better, "dtype": m.dtype, "label": m.label,
                "description": m.description, "scope": m.scope}


def _mix(mix):
    if isinstance(mix, str):
        from dse.workloads.scenarios import load_mix  # deferred: scenarios load YAML data

        return load_mix(mix)
    return mix


def metric_info(column: str, mix=None) -> ColumnInfo | None:
    """The metric behind an evaluate column, or None if no metric has that name.

    `system_cost_usd`, `mix.throughput`, `feasible` resolve to design / mix metrics; `<scenario>.<name>`
    to a per-scenario metric. With `mix` (a Mix or built-in name) the scenario must be one of the mix's
    and its kind resolves kind-dependent units.
    """
    if column in MIX:
        return ColumnInfo(column=column, metric=MIX[column])
    if column in DESIGN:
        return ColumnInfo(column=column, metric=DESIGN[column])
    scenario, dot, name = column.rpartition(".")
    if not dot or not scenario or name not in SCENARIO:
        return None
    kind = None
    if mix is not None:
        kinds = {e.scenario.name: e.scenario.kind for e in _mix(mix).scenarios}
        if scenario not in kinds:
            return None
        kind = kinds[scenario]
    return ColumnInfo(column=column, metric=SCENARIO[name], scenario=scenario, kind=kind)


# What a scenario's best mapping maximises (`dse.evaluate.mapping` scores its plans by it), per goal and kind:
# throughput, or at `goal: latency` one decode step (LLM) or one batch (CNN)
GOAL_METRICS: dict[tuple[str, Kind], str] = {("throughput", "llm"): "throughput", ("throughput", "cnn"): "throughput",
                                             ("latency", "llm"): "tpot_ms", ("latency", "cnn"): "latency_ms"}


def goal_column(scenario) -> str:
    """The evaluate column of a scenario's goal metric (`GOAL_METRICS`): e.g. `local_llm.tpot_ms`."""
    return f"{scenario.name}.{GOAL_METRICS[scenario.goal, scenario.kind]}"


def scenario_columns(scenario: str) -> list[str]:
    """The per-scenario columns of one scenario, in registry order."""
    return [f"{scenario}.{name}" for name in SCENARIO]


def metric_names(mix) -> list[str]:
    """Every metric column `evaluate` returns for `mix` (what objectives and constraints may name)."""
    names = list(DESIGN)
    for entry in _mix(mix).scenarios:
        names += scenario_columns(entry.scenario.name)
    return names + [m for m in MIX if m not in names]
