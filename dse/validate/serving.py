"""The `serving` regime of `dse validate`: request-level serving measurements (concurrency sweeps,
MLPerf server percentiles, speculative-decoding and disaggregation speedups) against dse.serving.

Every prediction builds the continuous-batching engine of the measured replica from the operator
model (`dse.evaluate.serving.fit_engine`, the same fit `evaluate` uses) on the catalog chip, at the clock
its `tdp_w` cap allows under the replica's throughput plan (as `evaluate` sets it, `_clock`), then asks
the discrete-event simulator (closed-loop concurrency rows: it queues for KV blocks and batch slots)
or the analytical model (open-loop rows, speedups). One constant is fitted here on the train split:
`STEP_OVERHEAD_S`, the host-side time of one engine iteration (scheduling, sampling, launch) that
the operator model does not see; `fit_step_overhead` reproduces it. Rows live in
serving_measurements.yaml beside this file and use the split rule of dse/validate/measurements.py.
"""

from __future__ import annotations

import math
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dse.config import load_yaml_model
from dse.evaluate.mapping import map_llm
from dse.evaluate.serving import UNBOUND_ENGINES, fit_engine, mean_context
from dse.evaluate.steps import Builders
from dse.evaluate.throttle import clocked, evaluate_capped
from dse.model.calibration import check_stack, load_calibration
from dse.serving import analytic as an
from dse.serving.engine import DisaggFleet, EngineCoeffs, with_speculation
from dse.serving.sim import simulate
from dse.validate.measurements import assign_splits
from dse.validate.predict import hw_view, model_shape
from dse.validate.report import Row
from dse.workloads.precision import parse_precision
from dse.workloads.scenarios import BatchRange
from dse.workloads.serving import LengthDist, ServingWorkload

SERVING_FILE = Path(__file__).resolve().parent / "serving_measurements.yaml"
REGIME = "serving"

# Host-side time per engine iteration (s), fitted on the train split by `fit_step_overhead` over
# OVERHEAD_GRID_S (least squares on log error); test rows and `loose` rows never enter the fit (as in
# dse calibrate). 0: the tuned class's own per-step overhead (calibration.yaml step_overhead_us) leaves
# nothing for the non-loose train rows to add.
STEP_OVERHEAD_S = 0.0  # refit (fit_step_overhead) 2026-12-01 with loose rows out of the fit (was 1 ms with the loose MLPerf rows in)
OVERHEAD_GRID_S = (0.0, 0.5e-3, 1e-3, 2e-3, 3e-3, 4e-3, 6e-3, 8e-3)

# Largest tensor-parallel degree a pool plan may use: attention heads split over one NVLink domain of
# 8 GPUs (the DGX/HGX board; DeepSeek-R1 deployments in TensorRT-LLM's DeepSeek guide, measurements_more
# §1 rows 1.11-1.14, use TP ≤ 8 with attention-DP/EP beyond). Bounds: 1 .. the model's attention heads.
MAX_TP = 8
# Latency of a disaggregated row's KV transfer (s) on top of its bytes over `link_gbps`: one NVLink-class
# message setup, assumed (the rows' link is assumed too); bounds 0 .. 10 ms (a network hop). Each
# request pays it once, spread over its 1000+ output tokens: its value barely moves the speedup.
KV_LINK_LATENCY_S = 1e-3

# metric -> unit
METRICS = {
    "ttft_mean_ms": "ms", "itl_mean_ms": "ms", "output_tokens_per_s": "tokens/s",
    "ttft_p99_ms": "ms", "tpot_p99_ms": "ms", "server_tokens_per_s": "tokens/s", "speedup": "×",
}
# simulated closed-loop requests per client, and the fraction dropped as the start-up transient
SIM_REQUESTS_PER_CLIENT, SIM_MIN_REQUESTS, SIM_WARMUP = 6, 400, 0.25


class ServingMeasurement(BaseModel):
    """One published serving figure and the setup that produced it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    row: str = Field(description="row number in shared/reference/measurements_more.md")
    kind: Literal["concurrency", "mlperf_server", "speculative", "disaggregated"]
    metric: str
    value: float = Field(gt=0)
    hardware: str
    num_chips: int = Field(1, ge=1)
    model: str
    precision: str = "bf16"
    tp: int = Field(1, ge=1)
    ep: int = Field(1, ge=1)
    max_batch: int = Field(256, ge=1, description="engine's max running sequences")
    prompt_tokens: LengthDist
    output_tokens: LengthDist
    concurrency: int | None = Field(None, ge=1)
    rate_rps: float | None = Field(None, gt=0)
    ttft_ms: dict[str, float] = Field(default_factory=dict)
    tpot_ms: dict[str, float] = Field(default_factory=dict)
    spec_k: int = Field(0, ge=0, description="drafted tokens per step (speculative rows)")
    accepted_tokens: float = Field(1.0, ge=1, description="mean tokens per verification step, as published")
    link_gbps: float = Field(400.0, gt=0, description="KV transfer link of a disaggregated fleet (GB/s)")
    instance_chips: tuple[int, int] | None = Field(
        None, description="disaggregated rows: the published range of chips per engine instance (low, high); "
        "co-location and each pool choose their own tp × ep plan (`pool_plans`) with a power-of-two chip "
        "count in it; unset: the row's tp × ep for all")
    offline_tokens_per_s: float | None = Field(None, gt=0, description="the same system's published Offline "
                                               "tok/s (MLPerf rows; context for the reader, not used by the prediction)")
    tpot_x_batch1: float | None = Field(None, gt=1, description="TPOT SLO as a multiple of the model's batch-1 "
                                        "step (a published interactivity relative to the system's best)")
    software: str
    software_class: Literal["tuned", "generic"] = "tuned"
    stack: dict[str, bool | str] = Field(
        default_factory=dict, description="the published stack's structure where it differs from its software_class "
        "(dse.model.calibration.STACK_FIELDS, as dse/catalog/measurements.yaml rows); never fitted")
    source: str = Field(min_length=10)
    loose: bool = False
    notes: str = ""

    @field_validator("stack")
    @classmethod
    def _stack(cls, v: dict[str, bool | str]) -> dict[str, bool | str]:
        return check_stack(v)

    @model_validator(mode="after")
    def _consistent(self):
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; valid: {', '.join(METRICS)}")
        if self.kind == "concurrency" and self.concurrency is None:
            raise ValueError("a concurrency row needs `concurrency`")
        if self.kind == "mlperf_server" and self.rate_rps is None:
            raise ValueError("an mlperf_server row needs `rate_rps` (samples/s)")
        if self.kind == "speculative" and self.spec_k < 1:
            raise ValueError("a speculative row needs spec_k ≥ 1")
        if self.kind == "disaggregated" and (self.num_chips // (self.tp * self.ep) < 2
                                             or not (self.tpot_ms or self.tpot_x_batch1)):
            raise ValueError("a disaggregated row needs ≥ 2 engines (num_chips / (tp·ep)) and a TPOT SLO "
                             "(tpot_ms or tpot_x_batch1)")
        if self.instance_chips is not None and not 1 <= self.instance_chips[0] <= self.instance_chips[1]:
            raise ValueError("instance_chips is (low, high) with 1 ≤ low ≤ high")
        return self

    @property
    def unit(self) -> str:
        return METRICS[self.metric]

    @property
    def stack_items(self) -> tuple[tuple[str, bool], ...]:
        """`stack` as a hashable key of the cached engine fits."""
        return tuple(sorted(self.stack.items()))

    def pool_plans(self) -> list[tuple[int, int]]:
        """(tp, ep) plans a disaggregated row's pools and its co-located baseline choose from: every
        power-of-two tp ≤ `MAX_TP` and ep with tp·ep a power of two in `instance_chips` (tp·ep > 1 needs
        ep ≤ the model's experts, checked by the step builder); the row's own (tp, ep) when unset."""
        if self.instance_chips is None:
            return [(self.tp, self.ep)]
        lo, hi = self.instance_chips
        out = []
        c = 1
        while c <= hi:
            if c >= lo:
                out += [(1 << k, c >> k) for k in range(MAX_TP.bit_length()) if (1 << k) <= c]
            c *= 2
        return out

    @property
    def engines(self) -> int:
        return max(1, self.num_chips // (self.tp * self.ep))

    def workload(self, **load) -> ServingWorkload:
        return ServingWorkload(prompt_tokens=self.prompt_tokens, output_tokens=self.output_tokens,
                               ttft_ms=self.ttft_ms, tpot_ms=self.tpot_ms, **load)


class ServingFile(BaseModel):
    model_config = ConfigDict(extra="allow")  # top-level YAML anchors (shared row fields) are allowed

    measurements: list[ServingMeasurement]

    @model_validator(mode="after")
    def _unique(self):
        ids = [m.id for m in self.measurements]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate measurement id(s) {dup}")
        return self


@lru_cache(maxsize=4)
def load_serving(path: str | None = None) -> list[ServingMeasurement]:
    return load_yaml_model(Path(path or SERVING_FILE), ServingFile, what="serving measurements").measurements


@lru_cache(maxsize=64)
def _clock(hardware: str, tp: int, ep: int, model: str, precision: str, software_class: str, max_batch: int,
           prompt_tokens: int, output_tokens: int, stack: tuple[tuple[str, bool], ...] = ()) -> float:
    """Clock factor of one replica under its design's `tdp_w` cap, set as `dse evaluate` sets a serving
    scenario's (dse/evaluate/table.py): the power of the replica's throughput plan (static mapping, batch
    up to `max_batch` at the mean prompt and output lengths) lowered until it meets the cap
    (`dse.evaluate.throttle.evaluate_capped`); 1 without a cap or under it."""
    sc = SimpleNamespace(name="serving replica", max_chips=tp * ep, goal="throughput", tpot_ms=None, ttft_ms=None,
                         slo=None, prompt_len=prompt_tokens, output_len=output_tokens,
                         batch=BatchRange(min=1, max=max_batch))
    shape, prec = model_shape(model), parse_precision(precision)
    cal = load_calibration(software_class).for_stack(dict(stack))
    _, f = evaluate_capped(lambda h: map_llm(sc, shape, prec, h, cal, Builders, force_tp=tp, force_pp=1, force_ep=ep),
                           hw_view(hardware, tp * ep))
    return float(f[0])


@lru_cache(maxsize=64)
def _fit(hardware: str, tp: int, ep: int, model: str, precision: str, software_class: str, max_batch: int,
         context: int, layers: int | None = None, clock: float = 1.0,
         stack: tuple[tuple[str, bool], ...] = ()) -> EngineCoeffs:
    """The engine of one replica (tp × ep chips of the catalog design at `clock` × its clock: `_clock`);
    `layers` = 1 for a one-layer copy of the model (an MTP module: a block plus the shared LM head)."""
    shape = model_shape(model)
    if layers is not None:
        shape = shape.model_copy(update={"layers": layers, "dense_layers": 0})
    hw = hw_view(hardware, tp * ep)
    if clock != 1.0:
        hw = clocked(hw, np.array([clock]))
    return fit_engine(shape, parse_precision(precision), hw, load_calibration(software_class).for_stack(dict(stack)),
                      tp, 1, ep, max_batch, context)


def _replica_clock(m: ServingMeasurement, tp: int, ep: int, max_batch: int) -> float:
    """`_clock` of a (tp, ep) replica of row `m` at its workload's mean prompt and output lengths."""
    return _clock(m.hardware, tp, ep, m.model, m.precision, m.software_class, max_batch,
                  max(1, round(m.prompt_tokens.mean())), max(1, round(m.output_tokens.mean())), m.stack_items)


def _engine(m: ServingMeasurement, layers: int | None = None) -> EngineCoeffs:
    """The row's replica engine (`layers` = 1: its one-layer draft copy, on the same throttled clock)."""
    context = mean_context(m.workload(arrival_rate_rps=1.0))
    return _fit(m.hardware, m.tp, m.ep, m.model, m.precision, m.software_class,
                m.max_batch if layers is None else 1, context, layers, _replica_clock(m, m.tp, m.ep, m.max_batch),
                m.stack_items)


def _draft_step_s(m: ServingMeasurement) -> float:
    """One draft step at batch 1 (the one-layer copy), timed by the same operator model."""
    context = mean_context(m.workload(arrival_rate_rps=1.0))
    return float(_engine(m, layers=1).iteration_time_s(1, 1, context)[0])


def _alpha(k: int, tau: float) -> float:
    """Per-token acceptance α with (1 − α^(k+1))/(1 − α) = τ (bisection; τ ≤ k + 1)."""
    tau = min(tau, k + 1 - 1e-6)
    lo, hi = 0.0, 1.0 - 1e-9
    for _ in range(60):
        a = 0.5 * (lo + hi)
        lo, hi = (a, hi) if (1 - a ** (k + 1)) / (1 - a) < tau else (lo, a)
    return 0.5 * (lo + hi)


def predict_serving(m: ServingMeasurement, overhead_s: float = STEP_OVERHEAD_S) -> float:
    """The model's value of `m.metric` for the measured setup (NaN if it cannot run)."""
    base = _engine(m)
    e = replace(base, t_fixed_s=base.t_fixed_s + overhead_s)
    if m.kind == "concurrency":
        w = m.workload(concurrency=m.concurrency)
        n = max(SIM_MIN_REQUESTS, SIM_REQUESTS_PER_CLIENT * m.concurrency)
        r = simulate(e, w, n, seed=0, replicas=m.engines).steady(SIM_WARMUP)
        if m.metric == "ttft_mean_ms":
            return float(np.mean(r.ttft_s)) * 1e3
        if m.metric == "itl_mean_ms":
            return float(np.mean(r.tpot_s)) * 1e3
        t0 = float(np.min(r.finish_s))
        done = r.finish_s > t0
        return float(np.sum(r.output_tokens[done]) / (np.max(r.finish_s) - t0)) * m.engines
    if m.kind == "mlperf_server":
        # An MLPerf Server result is the largest Poisson target rate whose run meets the TTFT and TPOT
        # p99 limits (measurements_more.md §3b): the submission ran at that rate. The model is asked at
        # ITS largest rate meeting the same limits: the rate gives the server tok/s, the percentiles are
        # read there (the load the submission ran, as the model's own system reaches it).
        w = m.workload(arrival_rate_rps=m.rate_rps)
        top = an.max_rate_rps(lambda r: an.colocated(e, w, r, m.engines), w, 1)[0]
        if not top > 0:
            return math.nan
        if m.metric == "server_tokens_per_s":
            return float(top * w.output_tokens.mean())
        lat = an.colocated(e, w, top, m.engines)
        q = lat.ttft_quantile(0.99) if m.metric == "ttft_p99_ms" else lat.tpot_quantile(0.99)
        return float(q[0]) * 1e3 if np.isfinite(q[0]) else math.nan
    if m.kind == "speculative":
        w = m.workload(arrival_rate_rps=1e-4)    # batch 1: one request at a time
        spec = with_speculation(e, m.spec_k, _alpha(m.spec_k, m.accepted_tokens), _draft_step_s(m) + overhead_s)
        return float(an.colocated(e, w).tpot_mean_s()[0] / an.colocated(spec, w).tpot_mean_s()[0])
    # disaggregated: per GPU, the rate-matched fleet of the best prefill plan and the best decode plan
    # over the best co-located plan, each the largest rate meeting the SLOs (row 4.3: "rate-matched")
    w = m.workload(arrival_rate_rps=1.0)
    if m.tpot_x_batch1 is not None:
        step1 = float(e.iteration_time_s(1, 1, mean_context(w))[0])
        w = w.model_copy(update={"tpot_ms": {"p50": m.tpot_x_batch1 * step1 * 1e3}})
    rates = pool_rates(m, w, overhead_s)
    co = max(r["colocated"] / (c[0] * c[1]) for c, r in rates.items())
    per_req = min(c[0] * c[1] / r["prefill"] for c, r in rates.items()) + \
        min(c[0] * c[1] / r["decode"] for c, r in rates.items())
    return float(1.0 / per_req / co) if co > 0 and np.isfinite(per_req) else math.nan


def pool_rates(m: ServingMeasurement, w: ServingWorkload, overhead_s: float = STEP_OVERHEAD_S
               ) -> dict[tuple[int, int], dict[str, float]]:
    """(tp, ep) -> the largest rate (req/s) one engine of that plan serves within the SLOs of `w`:
    co-located, as a prefill-only engine (TTFT; decode unbounded) and as a decode-only engine (TPOT with
    the KV transfer; prefill unbounded). A plan whose weights leave no KV room serves 0; `inf` never
    occurs (a pool with no rate gives a per-request cost of inf). The engine's max batch is `max_batch`
    per attention-DP rank (TensorRT-LLM's max_batch_size is per rank: row 1.11 runs 896 at concurrency
    7168 on 8 ranks)."""
    shape = model_shape(m.model)
    context = mean_context(w)
    out = {}
    for tp, ep in m.pool_plans():
        if (ep > 1 and (not shape.is_moe or ep > shape.experts)) or tp > shape.heads:
            continue
        base = _fit(m.hardware, tp, ep, m.model, m.precision, m.software_class, m.max_batch * ep, context,
                    clock=_replica_clock(m, tp, ep, m.max_batch * ep), stack=m.stack_items)
        e = replace(base, t_fixed_s=base.t_fixed_s + overhead_s)
        lat = KV_LINK_LATENCY_S
        co = an.colocated_summary(e, w, replicas=1)["max_rate_rps"][0]
        pre = an.disagg_summary(DisaggFleet(e, e, 1, UNBOUND_ENGINES, m.link_gbps, lat), w)["max_rate_rps"][0]
        dec = an.disagg_summary(DisaggFleet(e, e, UNBOUND_ENGINES, 1, m.link_gbps, lat), w)["max_rate_rps"][0]
        out[(tp, ep)] = {"colocated": float(co), "prefill": max(float(pre), 1e-300),
                         "decode": max(float(dec), 1e-300)}
    return out


def serving_rows(split: str = "all", overhead_s: float = STEP_OVERHEAD_S, path: str | None = None) -> list[Row]:
    """Predicted vs measured for the serving rows of `split`, as `dse.validate.report.Row`s."""
    rows = load_serving(path)
    sp = assign_splits(rows)
    out = []
    for m in rows:
        if split != "all" and sp[m.id] != split:
            continue
        p = predict_serving(m, overhead_s)
        err = 100.0 * (p / m.value - 1.0) if np.isfinite(p) else math.nan
        out.append(Row(m.id, REGIME, sp[m.id], m.software_class, m.hardware, m.metric, m.unit, m.value, p, err,
                       m.loose))
    return out


def fit_step_overhead(path: str | None = None) -> float:
    """The grid value of OVERHEAD_GRID_S with the least squared log error on the train split's rows
    that are not `loose` (loose rows are validated, never fitted: dse/validate/calibrate.py)."""
    def loss(o: float) -> float:
        errs = [math.log(r.predicted / r.measured) for r in serving_rows("train", o, path)
                if np.isfinite(r.predicted) and r.predicted > 0 and not r.loose]
        return float(np.mean(np.square(errs))) if errs else math.inf
    return min(OVERHEAD_GRID_S, key=loss)
