"""`mapping._llm_result`'s texts for the designs without a plan (the closest SLO miss, else the largest plan that does
not fit, in the off-chip memory's binary units or the SRAM's decimal ones, else no mapping), each SRAM capacity's text
formatted once per call inline: the same texts as a loop over the designs formatting each text in full (the reference
below), on random designs of two mixes, every kind of text among them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dse.evaluate import evaluate, mapping
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology
from dse.study.samplers import sample_space
from dse.study.space import load_space
from dse.workloads.scenarios import load_mix

TECH = default_technology()
FULL = Path(__file__).resolve().parents[1] / "search_spaces" / "full.yaml"


def _reference(t, hw, chips, ch, slo_tpot, slo_ttft) -> list[str]:
    """Each design's text, one loop over the designs without a plan (in design order)."""
    bad = (~(ch.plan >= 0)).nonzero()[0]
    out = []
    for d in bad.tolist():
        p, big = int(ch.close_plan[d]), int(ch.largest[d])
        if p >= 0:
            tl = f" (limit {slo_tpot:g})" if slo_tpot else ""
            fl = f" (limit {slo_ttft:g})" if slo_ttft else ""
            out.append(f"SLO missed: TPOT {float(ch.close_tpot[d]) * 1e3:.3g} ms{tl}, TTFT "
                       f"{float(ch.close_ttft[d]) * 1e3:.3g} ms{fl} at best (tp={int(t.tp[p])}, pp={int(t.pp[p])}, "
                       f"batch {int(t.batch[p])})")
        elif big >= 0:
            mem = float(hw.mem_bytes[d])
            binary = mem > 0
            cap = mapping._fmt_gb(mem if binary else float(hw.sram_bytes[d]), binary)
            ep = int(t.ep[big])
            out.append(f"weights {mapping._fmt_gb(t.w[big], binary)} + KV {mapping._fmt_gb(t.kv[big], binary)} per chip"
                       f" > {'memory' if binary else 'SRAM'} {cap} (tp={int(t.tp[big])}, pp={int(t.pp[big])}"
                       f"{f', ep={ep}' if ep > 1 else ''} on {int(t.replica[big])} of {int(chips[d])} chips)")
        else:
            out.append("no feasible mapping (model does not fit on the available chips)")
    return out


@pytest.mark.parametrize("grouped", [0, 10 ** 9])  # the texts by their distinct parts, or design by design
@pytest.mark.parametrize("mix,n,seed", [("balanced", 600, 5), ("extended", 300, 6)])
def test_llm_reasons_are_the_loops(monkeypatch, mix, n, seed, grouped):
    monkeypatch.setattr(mapping, "REASONS_GROUPED", grouped)
    arr = DesignArrays.from_columns(sample_space(load_space(FULL), n, np.random.default_rng(seed)), TECH)
    calls = []
    real = mapping._llm_result

    def kept(t, hw, chips, ch, out_len, slo_tpot, slo_ttft):
        res = real(t, hw, chips, ch, out_len, slo_tpot, slo_ttft)
        calls.append((res, _reference(t, hw, chips, ch, slo_tpot, slo_ttft)))
        return res
    monkeypatch.setattr(mapping, "_llm_result", kept)
    evaluate(arr, load_mix(mix), TECH)
    seen = set()
    for res, ref in calls:
        got = res.reason[~res.feasible]
        assert got.dtype == object and all(type(x) is str for x in got)
        assert list(got) == ref
        assert (res.reason[res.feasible] == "").all()
        seen.update(x.split(" ")[0] if x.startswith("SLO") else x.split(" > ")[1].split(" ")[0] if " > " in x else "none"
                    for x in ref)
    assert {"SLO", "memory", "SRAM"} <= seen  # every kind of text was compared


def test_by_value_formats_each_distinct_value_once():
    """`mapping._by_value`: each element's text, formatted once per distinct value; floats by their bits (-0.0 and 0.0
    apart, as their texts are), ints as Python ints."""
    seen = []

    def text(v):
        seen.append(v)
        return f"<{v!r}>"
    x = np.array([0.0, -0.0, 1.5, np.nan, 1.5, 0.0, -0.0])
    got = mapping._by_value(x, text)
    assert got.dtype == object and list(got) == ["<0.0>", "<-0.0>", "<1.5>", "<nan>", "<1.5>", "<0.0>", "<-0.0>"]
    assert len(seen) == 4 and all(type(v) is float for v in seen)
    seen.clear()
    got = mapping._by_value(np.array([3, 1, 3, 2], np.int64), text)
    assert list(got) == ["<3>", "<1>", "<3>", "<2>"] and sorted(seen) == [1, 2, 3] and all(type(v) is int for v in seen)
    assert mapping._by_value(np.zeros(0), text).shape == (0,)
