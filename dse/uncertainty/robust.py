"""Robust metrics for studies (issue 16.4): percentiles of a metric over the Monte-Carlo samples and the
probability of meeting a condition, as plain columns a study can optimise or constrain.

Names (declared in dse.runs.layout.ROBUST_RE): `p90.system_cost_usd` is the 90th percentile of the system
cost over the samples, `p10.mix.throughput` the 10th percentile of the mix throughput (a sample in which
the design cannot run counts as 0 throughput), `prob.<name>` the share of samples in which the design is
feasible and meets the study's condition `uncertainty.chance.<name>` (constraint grammar, dse.expr).
Every design of a study sees the same samples (fixed seed: common random numbers across batches).

`p10.mix.throughput` equals the nominal throughput wherever the design stays feasible, by design: no
technology range moves a performance input, and mix.throughput is a ratio to the reference design on the
same scenarios, whose model error (per scenario, dse.uncertainty.model_error) is common to both and
cancels. A robust throughput objective that carries the model error uses an absolute rate, e.g.
`p10.local_llm.tokens_per_s`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from dse import expr as ex
from dse.runs.layout import robust_column
from dse.uncertainty.montecarlo import MonteCarlo


def robust_columns(mc: MonteCarlo, names: Sequence[str], chance: Mapping[str, str],
                   knobs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """(n,) column per robust name from a Monte-Carlo evaluation; `knobs` are the design columns the
    chance conditions may read besides metrics."""
    n = len(mc.nominal["feasible"])
    feasible = mc.samples["feasible"] > 0.5
    out: dict[str, np.ndarray] = {}
    for name in names:
        kind, q, target = robust_column(name)
        if kind == "quantile":
            out[name] = np.quantile(mc.samples[target], q, axis=0) if mc.n_samples else mc.nominal[target]
            continue
        env = {**{k: np.asarray(v) for k, v in knobs.items()}, **mc.samples}
        with np.errstate(all="ignore"):
            met = np.broadcast_to(ex.parse(chance[target]).violation(env) <= 0, feasible.shape) & feasible
        out[name] = met.mean(axis=0) if mc.n_samples else np.zeros(n)
    return out


__all__ = ["robust_columns"]
