"""Model error as data: the held-out residual spread of `dse validate` per regime and software class.

`write_model_error()` (run by `dse calibrate`, or `python -m dse.uncertainty.model_error` after a physics
change) predicts every measurement of the TEST split (dse.validate, never fitted on it;
the serving rows of dse.validate.serving included, as `dse validate` reports them),
takes σ = RMS of ln(predicted / measured) per (software class, regime) and pooled per regime, and writes
`dse/uncertainty/data/model_error.yaml`. `sigma_for(scenario, software_class)` reads it: the Monte-Carlo
applies a multiplicative lognormal factor exp(σ·z) to every time metric of the scenario (throughputs
divide by it). A group with fewer than `MIN_ROWS` held-out rows falls back to the pooled regime, then
to all rows.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dse.config import load_data_yaml

DATA_FILE = Path(__file__).parent / "data" / "model_error.yaml"
MIN_ROWS = 2  # fewer held-out rows than this: not a spread, fall back to the pooled figure


def regime_of(scenario: Any) -> str:
    """The `dse validate` regime a scenario's time is most like (REGIMES of dse.validate.measurements)."""
    if scenario.kind == "cnn":
        return "cnn"
    if getattr(scenario, "serving", None) is not None:  # arrivals, queueing and SLOs: the serving rows
        return "serving"
    if getattr(scenario.model, "experts", 1) > 1:
        return "moe"
    if tuple(scenario.phases) == ("prefill",):
        return "prefill"
    return "decode_b1" if isinstance(scenario.batch, int) and scenario.batch == 1 else "large_batch"


def _spread(logs: list[float]) -> dict[str, float]:
    a = np.asarray(logs, float)
    return {"n": int(a.size), "sigma_log": round(float(np.sqrt(np.mean(a * a))), 4) if a.size else 0.0}


def compute_model_error(split: str = "test") -> dict[str, Any]:
    """{split, all, regimes: {regime: spread}, classes: {class: {regime: spread}}} from `dse validate`."""
    from dse.validate.report import predict_rows
    from dse.validate.serving import serving_rows

    rows = [r for r in predict_rows(split) + serving_rows(split) if r.predicted > 0 and math.isfinite(r.predicted) and r.measured > 0]
    logs = [(r.software_class, r.regime, math.log(r.predicted / r.measured)) for r in rows]
    regimes = sorted({g for _, g, _ in logs})
    classes = sorted({c for c, _, _ in logs})
    return {
        "source": f"dse validate, {split} split (held out from dse calibrate): σ = RMS of ln(predicted/measured)",
        "split": split,
        "all": _spread([x for _, _, x in logs]),
        "regimes": {g: _spread([x for _, gg, x in logs if gg == g]) for g in regimes},
        "classes": {c: {g: _spread([x for cc, gg, x in logs if cc == c and gg == g])
                        for g in regimes if any(cc == c and gg == g for cc, gg, _ in logs)} for c in classes},
    }


def write_model_error(path: Path = DATA_FILE, split: str = "test") -> dict[str, Any]:
    """Recompute the residual spreads and write them to `path` (the shipped data file by default)."""
    data = compute_model_error(split)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# written by dse.uncertainty.model_error.write_model_error() (dse calibrate, or python -m "
                    "dse.uncertainty.model_error); do not edit by hand\n"
                    + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    load_model_error.cache_clear()
    return data


@functools.lru_cache(maxsize=4)
def load_model_error(path: Path = DATA_FILE) -> dict[str, Any]:
    """The stored residual spreads (empty spreads if the file is missing: no model error)."""
    if not path.exists():
        return {"all": {"n": 0, "sigma_log": 0.0}, "regimes": {}, "classes": {}}
    return load_data_yaml(path)


def sigma_for(scenario: Any, software_class: str | None = None, data: dict | None = None) -> float:
    """σ of ln(time) for `scenario` under `software_class` (default: the calibration's default class)."""
    data = data or load_model_error()
    regime = regime_of(scenario)
    cls = software_class or _default_class()
    for spread in (data.get("classes", {}).get(cls, {}).get(regime), data.get("regimes", {}).get(regime), data.get("all")):
        if spread and spread.get("n", 0) >= MIN_ROWS:
            return float(spread["sigma_log"])
    return 0.0


def _default_class() -> str:
    from dse.model.calibration import CALIBRATION_FILE

    return str(load_data_yaml(CALIBRATION_FILE).get("default_class", ""))


if __name__ == "__main__":  # regenerate the shipped data file from the current model
    write_model_error()
    print(f"wrote {DATA_FILE}")
