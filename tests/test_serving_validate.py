"""The `serving` regime of `dse validate`: schema, split, the acceptance inversion, held-out error."""

import math
from dataclasses import replace

import numpy as np
import pytest
from pydantic import ValidationError

from dse.validate import serving as sv
from dse.validate.measurements import REGIMES, assign_splits
from dse.validate.report import summarize


def test_rows_load_every_kind_and_both_splits():
    rows = sv.load_serving()
    assert {m.kind for m in rows} == {"concurrency", "mlperf_server", "speculative", "disaggregated"}
    sp = assign_splits(rows)
    assert set(sp.values()) == {"train", "test"}
    assert 0.15 * len(rows) <= sum(v == "test" for v in sp.values()) <= 0.45 * len(rows)  # ~a third (per-row rule)
    assert "serving" in REGIMES


def test_bad_row_names_the_missing_field():
    good = sv.load_serving()[0].model_dump()
    with pytest.raises(ValidationError, match="needs `concurrency`"):
        sv.ServingMeasurement.model_validate(good | {"concurrency": None})
    with pytest.raises(ValidationError, match="unknown metric"):
        sv.ServingMeasurement.model_validate(good | {"metric": "latency"})


@pytest.mark.parametrize("k, alpha", [(1, 0.92), (3, 0.7), (5, 0.5)])
def test_acceptance_inversion_round_trips(k, alpha):
    tau = (1 - alpha ** (k + 1)) / (1 - alpha)
    assert sv._alpha(k, tau) == pytest.approx(alpha, abs=1e-9)


@pytest.mark.slow
def test_held_out_median_error_within_20_percent_and_summarized_as_serving():
    rows = sv.serving_rows("test")
    assert rows and all(r.split == "test" and r.regime == "serving" for r in rows)
    errs = [abs(r.error_pct) if math.isfinite(r.error_pct) else math.inf for r in rows]
    assert np.median(errs) <= 20.0, [(r.id, round(r.error_pct, 1)) for r in rows]
    s = {x.group: x for x in summarize(rows)}
    assert s["serving"].n == len(rows)


@pytest.mark.slow
def test_fitted_step_overhead_is_what_the_train_split_gives():
    assert sv.fit_step_overhead() == sv.STEP_OVERHEAD_S


def test_pool_plans_span_the_published_instance_sizes():
    row = next(m for m in sv.load_serving() if m.kind == "disaggregated")
    plans = row.pool_plans()
    lo, hi = row.instance_chips
    # every power-of-two chip count in [lo, hi], every power-of-two tp ≤ MAX_TP dividing it
    assert sorted({tp * ep for tp, ep in plans}) == [c for c in (1, 2, 4, 8, 16, 32, 64) if lo <= c <= hi]
    assert all(tp <= sv.MAX_TP and (tp & (tp - 1)) == 0 for tp, _ in plans)
    assert len(plans) == len(set(plans)) == 3 + 4 + 4 + 4      # (4, 32): 4 has tp 1, 2, 4; the others 4 each
    assert row.model_copy(update={"instance_chips": None}).pool_plans() == [(row.tp, row.ep)]
    with pytest.raises(ValidationError, match="instance_chips"):
        sv.ServingMeasurement.model_validate(row.model_dump() | {"instance_chips": (8, 4)})


@pytest.mark.slow
def test_disaggregated_speedup_is_the_rate_matched_fleet_over_colocation():
    """With one plan the speedup is the harmonic rate-matched fleet over the co-located engine
    (1 / (1/R_prefill + 1/R_decode) / R_co, chips cancel); with the published 4-32 GPU instances each
    pool picks its own plan, which can only raise the disaggregated fleet's rate per GPU."""
    row = next(m for m in sv.load_serving() if m.kind == "disaggregated")
    one = row.model_copy(update={"instance_chips": None})
    w = one.workload(arrival_rate_rps=1.0)
    e = sv._engine(one)
    step1 = float(e.iteration_time_s(1, 1, sv.mean_context(w))[0]) + sv.STEP_OVERHEAD_S
    w = w.model_copy(update={"tpot_ms": {"p50": one.tpot_x_batch1 * step1 * 1e3}})
    (r,) = sv.pool_rates(one, w).values()
    expect = 1.0 / (1.0 / r["prefill"] + 1.0 / r["decode"]) / r["colocated"]
    assert sv.predict_serving(one) == pytest.approx(expect, rel=1e-9)
    rates = sv.pool_rates(row, w)
    per_gpu = {k: {p: v / (k[0] * k[1]) for p, v in r.items()} for k, r in rates.items()}
    best_pre = max(per_gpu.values(), key=lambda d: d["prefill"])["prefill"]
    best_dec = max(per_gpu.values(), key=lambda d: d["decode"])["decode"]
    own = per_gpu[(row.tp, row.ep)]
    assert 1.0 / (1.0 / best_pre + 1.0 / best_dec) >= 1.0 / (1.0 / own["prefill"] + 1.0 / own["decode"])


@pytest.mark.slow
def test_mlperf_rows_are_read_at_the_largest_rate_meeting_the_limits():
    """An MLPerf Server result is the largest target rate that meets the TTFT/TPOT p99 limits: the
    server tok/s row is that rate × mean output, the percentile rows are read at that same rate, so
    they sit within the limits, and 2 % more load breaks a limit (or saturates the engines)."""
    rows = {m.id: m for m in sv.load_serving()}
    for gpu in ("h200", "mi300x"):
        tps, tpot, ttft = (rows[f"mlperf-mixtral-{gpu}-{k}"] for k in ("server-tps", "tpot-p99", "ttft-p99"))
        base = sv._engine(tps)
        e = replace(base, t_fixed_s=base.t_fixed_s + sv.STEP_OVERHEAD_S)
        w = tps.workload(arrival_rate_rps=tps.rate_rps)
        top = sv.predict_serving(tps) / w.output_tokens.mean()
        assert sv.predict_serving(tpot) <= tps.tpot_ms["p99"] * (1 + 1e-6)
        assert sv.predict_serving(ttft) <= tps.ttft_ms["p99"] * (1 + 1e-6)
        lat = sv.an.colocated(e, w, top, tps.engines)
        assert sv.predict_serving(tpot) == pytest.approx(float(lat.tpot_quantile(0.99)[0]) * 1e3, rel=1e-9)
        assert not sv.an.slo_met(sv.an.colocated(e, w, 1.02 * top, tps.engines), w)[0]


@pytest.mark.slow
def test_replica_runs_at_the_clock_its_power_cap_allows():
    """As `dse evaluate` does for a serving scenario, a replica whose throughput plan would draw more than
    its design's `tdp_w` runs at the clock that meets the cap (and is slower for it); one under its cap
    or without one keeps its full clock."""
    from types import SimpleNamespace

    from dse.evaluate.mapping import map_llm
    from dse.evaluate.steps import Builders
    from dse.evaluate.throttle import clocked, used_chip_power_w
    from dse.model.calibration import load_calibration
    from dse.validate.predict import hw_view, model_shape
    from dse.workloads.precision import parse_precision
    from dse.workloads.scenarios import BatchRange

    rows = {m.id: m for m in sv.load_serving()}
    for rid in ("mlperf-mixtral-b200-server-tps", "mlperf-mixtral-h100-server-tps"):
        m = rows[rid]
        sc = SimpleNamespace(name="x", max_chips=1, goal="throughput", tpot_ms=None, ttft_ms=None, slo=None,
                             prompt_len=max(1, round(m.prompt_tokens.mean())),
                             output_len=max(1, round(m.output_tokens.mean())), batch=BatchRange(min=1, max=m.max_batch))
        hw = hw_view(m.hardware, 1)

        def watts(f):
            res = map_llm(sc, model_shape(m.model), parse_precision(m.precision), clocked(hw, np.array([f])),
                          load_calibration(m.software_class).for_stack(m.stack), Builders, force_tp=1, force_pp=1,
                          force_ep=1)
            return float(used_chip_power_w(res)[0])
        f = sv._replica_clock(m, 1, 1, m.max_batch)
        cap = float(hw.power_cap_w[0]) if hw.power_cap_w is not None else 0.0
        if cap > 0 and watts(1.0) > cap:
            assert 0 < f < 1 and watts(f) == pytest.approx(cap, rel=2e-3)
            full = sv._fit(m.hardware, 1, 1, m.model, m.precision, m.software_class, m.max_batch,
                           sv.mean_context(m.workload(arrival_rate_rps=1.0)), stack=m.stack_items)
            assert sv._engine(m).t_per_token_s[0] > full.t_per_token_s[0]
        else:
            assert f == 1.0
