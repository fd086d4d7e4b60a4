"""Per-measurement errors and per-regime summaries (all recomputed from the model on every call)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dse.model.calibration import load_calibration
from dse.validate.measurements import REGIMES, load_measurements, select
from dse.validate.predict import predict


@dataclass
class Row:
    id: str
    regime: str
    split: str
    software_class: str
    hardware: str
    metric: str
    unit: str
    measured: float
    predicted: float
    error_pct: float          # 100 * (predicted / measured - 1)
    loose: bool
    model: str = ""           # the model shape measured ('' for kernels and serving rows)

    @property
    def abs_log_ratio(self) -> float:
        return abs(math.log(self.predicted / self.measured)) if self.predicted > 0 else math.inf


@dataclass
class Summary:
    group: str
    n: int
    median_abs_pct: float
    worst_abs_pct: float
    within_25_pct: float      # share of points with |error| <= 25 %, in percent
    worst_id: str


def predict_rows(split: str = "all", calibrations: dict | None = None, path: Path | None = None) -> list[Row]:
    """Predicted vs measured for every measurement of `split` (calibrations: class -> Calibration)."""

    data = load_measurements(path)
    out = []
    for m, sp in select(split, path):
        cal = (calibrations or {}).get(m.software_class) or load_calibration(m.software_class)
        p = predict(m, cal, data.models)
        err = 100.0 * (p / m.value - 1.0) if np.isfinite(p) else math.nan
        out.append(Row(m.id, m.regime, sp, m.software_class, m.hardware, m.metric, m.unit, m.value, p, err, m.loose, m.model))
    return out


def _summary(group: str, rows: list[Row]) -> Summary:
    errs = np.array([abs(r.error_pct) if np.isfinite(r.error_pct) else np.inf for r in rows])
    worst = int(np.argmax(errs))
    return Summary(group, len(rows), float(np.median(errs)), float(errs[worst]),
                   float(100.0 * np.mean(errs <= 25.0)), rows[worst].id)


def summarize_by(rows: list[Row], key: Callable[[Row], str]) -> list[Summary]:
    """One summary per value of `key` (in the order first seen), then 'overall'."""
    groups = list(dict.fromkeys(key(r) for r in rows))
    out = [_summary(g, [r for r in rows if key(r) == g]) for g in groups]
    if rows:
        out.append(_summary("overall", rows))
    return out


def summarize(rows: list[Row]) -> list[Summary]:
    """One summary per regime present (in REGIMES order), then 'overall'."""
    out = [_summary(reg, [r for r in rows if r.regime == reg]) for reg in REGIMES if any(r.regime == reg for r in rows)]
    if rows:
        out.append(_summary("overall", rows))
    return out


def to_json(rows: list[Row], summaries: list[Summary], split: str) -> dict:
    return {"split": split, "measurements": [asdict(r) for r in rows],
            "summary": [asdict(s) for s in summaries]}


def write_html(rows: list[Row], path: Path, title: str) -> None:
    """Log-log predicted vs measured (each row in its own unit), y = x and ±25 % lines, colour by regime,
    shape by split; self-contained HTML (the Vega JS inlined: works offline)."""
    import altair as alt

    recs = [{"id": r.id, "regime": r.regime, "split": r.split, "unit": r.unit, "measured": r.measured,
             "predicted": r.predicted, "error_pct": round(r.error_pct, 1), "hardware": r.hardware}
            for r in rows if np.isfinite(r.predicted) and r.predicted > 0]
    lo = min(min(d["measured"], d["predicted"]) for d in recs) / 1.5
    hi = max(max(d["measured"], d["predicted"]) for d in recs) * 1.5
    scale = alt.Scale(type="log", domain=[lo, hi])
    x = alt.X("measured:Q", scale=scale, title="measured (in each row's unit)")
    y = alt.Y("predicted:Q", scale=scale, title="predicted (same unit)")
    pts = alt.Chart(alt.Data(values=recs)).mark_point(filled=True, size=70).encode(
        x=x, y=y, color=alt.Color("regime:N"), shape=alt.Shape("split:N"),
        tooltip=["id:N", "regime:N", "split:N", "hardware:N", "unit:N", "measured:Q", "predicted:Q", "error_pct:Q"])
    lines = []
    for f, style in ((1.0, {"color": "gray", "strokeDash": [4, 4]}), (1.25, {"color": "lightgray"}),
                     (1 / 1.25, {"color": "lightgray"})):
        vals = [{"measured": lo, "predicted": lo * f}, {"measured": hi, "predicted": hi * f}]
        lines.append(alt.Chart(alt.Data(values=vals)).mark_line(**style).encode(x=x, y=y))
    chart = alt.layer(*lines, pts).properties(width=640, height=560, title=title).interactive()
    chart.save(str(path), inline=True)
