"""chip_area's infeasibility texts gathered per check and flagged at once (`area._Reasons`): the same reasons as
flagging each check in turn (texts joined with '; ' in the checks' order, after the reasons a row had), and the
interposer text per (memory, packaging) pair names each row's own memory and packaging, unknown names included."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from dse.evaluate.table import design_metrics
from dse.model.area import JOINS_IN_DICT, _package_ends, _Reasons, _tech_names, chip_area
from dse.model.arrays import DesignArrays, _Flags
from dse.model.technology import default_technology
from dse.study.samplers import sample_space
from dse.study.space import load_space


def _checks(n: int, seed: int, prior_share: float = 0.3):
    """(rows, valid, reason, the checks' (rows, texts) in order) of `n` rows: knob reasons on some, 5 checks."""
    rng = np.random.default_rng(seed)
    prior = np.where(rng.random(n) < prior_share, np.array([f"knob {k}" for k in range(n)], dtype=object), "")
    arr = SimpleNamespace(n=n, valid=prior == "", reason=prior)
    parts = []
    for part in range(5):
        rows = np.flatnonzero(rng.random(n) < 0.4)
        texts = [f"check {part} row {r}" for r in rows.tolist()]
        parts.append((rows, np.array(texts, dtype=object) if part == 2 else texts))
    return arr, parts


def _each_in_turn(arr, parts):
    each = _Flags(arr.n, arr.valid, arr.reason)
    for rows, texts in parts:
        msgs = np.full(arr.n, "", dtype=object)
        msgs[rows] = texts
        each.flag(np.isin(np.arange(arr.n), rows), msgs)
    return each


@pytest.mark.parametrize("n", [40, 400, 4000])  # (the joins in a dict up to JOINS_IN_DICT texts, by whole checks above)
def test_reasons_flagged_at_once_equal_flagging_each_check_in_turn(n):
    arr, parts = _checks(n, 5)
    bad = np.zeros(n, bool)
    for rows, _ in parts:
        bad[rows] = True
    why = _Reasons(arr, bad)
    for rows, texts in parts:
        why.add(rows, texts)
    why.values(why.rows(bad & (np.arange(n) % 3 == 0)), np.arange(n) * 1.5, "value {} over {}", np.full(n, 858.0))
    i = np.flatnonzero(bad & (np.arange(n) % 3 == 0))
    each = _each_in_turn(arr, parts + [(i, [f"value {v:.0f} over 858" for v in (i * 1.5).tolist()])])
    valid, reason = why.flagged(arr)
    assert (valid == each.valid).all() and reason.tolist() == each.reason.tolist()
    assert any("; check 4" in r and r.startswith("knob") for r in reason.tolist())
    texts = sum(len(r) for r, _ in why.parts)
    assert texts > JOINS_IN_DICT if n == 4000 else texts <= JOINS_IN_DICT if n == 40 else True


@pytest.mark.parametrize("n", [40, 4000])
def test_rows_flagged_before_keep_their_reason_unworded(n):
    """word_flagged False: a row with a reason keeps it alone, infeasible all the same; the others as before."""
    arr, parts = _checks(n, 6)
    bad = np.zeros(n, bool)
    for rows, _ in parts:
        bad[rows] = True
    bad[:3] = True  # (flagged by a check that words none of its rows here)
    why = _Reasons(arr, bad, word_flagged=False)
    assert why.word is not None and (why.word == (bad & (arr.reason == ""))).all()
    for rows, texts in parts:
        keep = why.rows(np.isin(np.arange(n), rows))
        why.add(keep, [t for r, t in zip(rows.tolist(), list(texts)) if r in set(keep.tolist())])
    valid, reason = why.flagged(arr)
    full = _each_in_turn(arr, parts)
    assert (valid == (arr.valid & ~bad)).all()
    had = arr.reason != ""
    assert reason[had].tolist() == arr.reason[had].tolist()
    assert reason[~had & bad].tolist() == [r for r in full.reason[~had & bad].tolist()]
    assert all(r == "" for r in reason[~had & ~bad].tolist())


def test_design_metrics_reasons_as_the_area_of_every_row_worded():
    """design_metrics' own chip_area call words no row the designs flag already: its reasons and feasibility are
    those it had with every row worded (the designs' reasons first, then the area's texts)."""
    tech = default_technology()
    rng = np.random.default_rng(11)
    cols = sample_space(load_space(Path(__file__).resolve().parents[1] / "search_spaces" / "full.yaml"), 600, rng)
    arr = DesignArrays.from_columns(cols, tech)
    assert 0 < np.count_nonzero(arr.reason != "") < arr.n
    area = chip_area(arr)
    _, _, ok, reason = design_metrics(arr)
    _, _, ok_all, reason_all = design_metrics(arr, area)
    assert (ok == ok_all).all() and reason.tolist() == reason_all.tolist()
    quiet = chip_area(arr, word_flagged=False)
    assert (quiet.feasible == area.feasible).all()
    had = arr.reason != ""
    assert quiet.reason[had].tolist() == arr.reason[had].tolist()
    assert quiet.reason[~had].tolist() == area.reason[~had].tolist()
    assert any(r.startswith("chip.") and "; " in r for r in area.reason[had].tolist())  # (worded rows had texts)


def test_interposer_text_names_each_rows_memory_and_packaging():
    tech = default_technology()
    hbm = [m for m, spec in tech.memories.items() if spec.needs_interposer]
    names = hbm[:2] + ["no_such_memory_a", "no_such_memory_b"]
    n = 8
    arr = DesignArrays.from_columns({"chip.memory": np.array([names[k % 4] for k in range(n)]),
                                     "chip.packaging": np.array(["organic"] * n)}, tech)
    reasons = chip_area(arr).reason.tolist()
    for k, r in enumerate(reasons):
        if arr.mem_needs_interposer[k] and arr.has_memory[k]:
            assert f"memory {names[k % 4]} needs a 2.5D interposer (cowos_s or cowos_l), packaging is organic" in r
    assert sum("needs a 2.5D interposer" in r for r in reasons) >= 4


def test_package_words_once_per_packaging_as_per_row():
    """`_package_ends`: each row's words around the package text's numbers as the per-row format gives them; None
    (per-row texts) where rows of one packaging differ in scale or limit, or a name is not an allowed one."""
    tech = default_technology()
    cols = sample_space(load_space(Path(__file__).resolve().parents[1] / "search_spaces" / "full.yaml"), 900,
                        np.random.default_rng(3))
    arr = DesignArrays.from_columns(cols, tech)
    i = np.arange(arr.n)
    heads, tails = _package_ends(arr, i)
    assert heads == [f"{pk} area " for pk in arr.names["chip.packaging"].tolist()]
    assert tails == [f", ×{s:g}) exceeds its {m:.0f} mm² limit"
                     for s, m in zip(arr.pkg_area_scale.tolist(), arr.pkg_max_interposer_mm2.tolist())]
    assert len(set(heads)) > 1
    for field in ("pkg_area_scale", "pkg_max_interposer_mm2"):
        x = np.array(getattr(arr, field), dtype=float)
        x[5] = np.nextafter(x[5], np.inf)
        assert _package_ends(dataclasses.replace(arr, **{field: x}), i) is None
    at = np.array(arr.name_at["chip.packaging"])
    at[7] = _tech_names(tech)["d2d_mm2_per_tbps"].allowed  # (another name)
    assert _package_ends(dataclasses.replace(arr, name_at={**arr.name_at, "chip.packaging": at}), i) is None
