"""The `serving` regime of `dse validate`: schema, split, the acceptance inversion, held-out error."""

import math

import numpy as np
import pytest
from pydantic import ValidationError

from dse.validate import serving as sv
from dse.validate.measurements import REGIMES
from dse.validate.report import summarize


def test_rows_load_every_kind_and_both_splits():
    rows = sv.load_serving()
    assert {m.kind for m in rows} == {"concurrency", "mlperf_server", "speculative", "disaggregated"}
    sp = sv.splits(rows)
    assert set(sp.values()) == {"train", "test"}
    assert sum(v == "test" for v in sp.values()) == len(rows) // 3 + (len(rows) % 3 > 1)
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
