"""chip_area's infeasibility texts gathered per check and flagged at once (`area._Reasons`): the same reasons as
flagging each check in turn (texts joined with '; ' in the checks' order, after the reasons a row had), and the
interposer text per (memory, packaging) pair names each row's own memory and packaging, unknown names included."""

from __future__ import annotations

import numpy as np

from dse.model.area import _Reasons, chip_area
from dse.model.arrays import DesignArrays, _Flags
from dse.model.technology import default_technology


def test_reasons_flagged_at_once_equal_flagging_each_check_in_turn():
    rng = np.random.default_rng(5)
    n = 400
    prior = np.where(rng.random(n) < 0.3, np.array([f"knob {k}" for k in range(n)], dtype=object), "")
    valid = prior == ""
    one, each = _Flags(n, valid, prior), _Flags(n, valid, prior)
    why = _Reasons(n)
    for part in range(5):
        rows = np.flatnonzero(rng.random(n) < 0.4)
        texts = [f"check {part} row {r}" for r in rows.tolist()]
        why.add(rows, texts)
        msgs = np.full(n, "", dtype=object)
        msgs[rows] = texts
        each.flag(np.isin(np.arange(n), rows), msgs)
    why.values(rng.random(n) < 0.5, rng.uniform(0, 1e3, n), "value {} over {}", np.full(n, 858.0))
    mask = np.zeros(n, bool)
    mask[why.parts[-1][0]] = True
    msgs = np.full(n, "", dtype=object)
    msgs[mask] = why.parts[-1][1]
    each.flag(mask, msgs)
    why.flag(one)
    assert (one.valid == each.valid).all() and one.reason.tolist() == each.reason.tolist()
    assert any("; check 4" in r and r.startswith("knob") for r in one.reason.tolist())


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
