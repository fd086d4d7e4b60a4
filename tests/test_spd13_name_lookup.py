"""A name knob's rows found by a table of a few code-point columns (`arrays._name_rows`) instead of a binary search:
on every row whose name is allowed the search's position, on every other row a position whose name differs from the
row's, the unknown rows the search's (`_lookup` flags them), and `DesignArrays.from_columns` the same arrays as with
the search."""

from __future__ import annotations

import numpy as np
import pytest

from dse.model import arrays as A
from dse.model.arrays import DesignArrays
from dse.model.knobs import KNOBS
from dse.model.technology import default_technology

from test_arrays_scalar_names import _same


def _name_lists():
    tech = default_technology()
    out = []
    for k in KNOBS:
        if k.type is not str:
            continue
        names = k.allowed(tech)
        if names:
            out.append((k.name, tuple(names)))
    return out


def _near_misses(names):
    """Names, their prefixes and extensions, case changes, a non-Latin-1 one, an empty one, one past every name."""
    pool = list(names)
    for nm in names:
        pool += [nm[:-1], nm + "x", nm.upper(), "\u0101" + nm[1:], nm[::-1], nm[:1] + "\u00ff" + nm[2:]]
    return pool + ["", "~", "zzzzzzzzzzzzzzzz"]


def _check(srt, raw):
    want = srt.searchsorted(raw)
    srt_end = np.append(srt, srt[-1:])
    got, bad = A._name_rows(srt, srt_end, raw)
    assert np.array_equal(bad, srt_end[want] != raw)  # (the unknown rows: the search's)
    assert got.shape == raw.shape and got.min(initial=0) >= 0 and got.max(initial=0) <= len(srt)
    known = (want < len(srt)) & (srt[np.minimum(want, len(srt) - 1)] == raw)
    assert np.array_equal(got[known], want[known])
    hit = (got < len(srt)) & (srt[np.minimum(got, len(srt) - 1)] == raw)
    assert np.array_equal(hit, known)  # (an unknown row never reads as a name)


@pytest.fixture(autouse=True)
def _tables_from_one_row(monkeypatch):
    monkeypatch.setattr(A, "NAME_TABLE_FROM", 1)  # (the table on any column, not only from 2,048 rows)


@pytest.mark.parametrize("knob,names", _name_lists())
def test_positions_are_the_search_s(knob, names):
    srt = A._sorted_names(names)[0]
    pool = _near_misses(names)
    rng = np.random.default_rng(13)
    for n in (1, 7, 300, 3000):
        _check(srt, np.array([pool[i] for i in rng.integers(0, len(pool), n)], dtype=str))
        _check(srt, np.array([names[i] for i in rng.integers(0, len(names), n)], dtype=str))  # (the width of names)


def test_every_name_list_gets_a_table():
    # the technology's name lists are told apart by a few columns (else the search runs, slower, the same values)
    for knob, names in _name_lists():
        srt = A._sorted_names(names)[0]
        assert A._name_keys(srt.tolist(), max(map(len, names))) is not None, knob


def test_names_no_columns_tell_apart_take_the_search():
    # "aaaaaa" and one "b" at each of 6 columns: any 4 columns leave 2 names that read as "aaaaaa"
    names = ["aaaaaa"] + ["a" * i + "b" + "a" * (5 - i) for i in range(6)]
    srt = np.array(sorted(names))
    assert A._name_keys(srt.tolist(), 6) is None
    _check(srt, np.array(names + ["aaaaab", "abbbbb", "aaaaa", ""]))  # (the search)
    assert A._name_keys(["ab", "ab"], 2) is None  # (the same name twice)
    assert A._name_keys(["abc"], 2) is None  # (no name fits rows of 2 code points)
    srt = np.array(["ab", "abc"])
    _check(srt, np.array(["ab", "a", "ab", "b"]))  # (width 2: "abc" never matches, "ab" does)


def test_from_columns_same_as_with_the_search(monkeypatch):
    tech = default_technology()
    from dse.study.samplers import sample_space
    from dse.study.space import load_space
    from pathlib import Path
    cols = sample_space(load_space(Path(__file__).resolve().parents[1] / "search_spaces" / "full.yaml"), 500,
                        np.random.default_rng(3))
    rng = np.random.default_rng(4)
    cols["chip.memory"] = cols["chip.memory"].astype(object)
    cols["chip.memory"][rng.integers(0, 500, 40)] = "hbm9"  # (unknown names: flagged alike)
    cols["chip.link"] = cols["chip.link"].astype(object)
    cols["chip.link"][rng.integers(0, 500, 40)] = "nvlink"
    fast = DesignArrays.from_columns(cols, tech)
    monkeypatch.setattr(A, "NAME_TABLE_FROM", 1 << 60)  # (the search)
    slow = DesignArrays.from_columns(cols, tech)
    _same(fast, slow)
    assert not fast.valid.all()


@pytest.mark.parametrize("form", ["strided", "big-endian"])
def test_columns_of_any_layout(form):
    # a strided column (a structured array's field, a slice with a step) or a byte-swapped one reads its code points
    names = tuple(A.BY_NAME["chip.memory"].allowed(default_technology()))
    srt = A._sorted_names(names)[0]
    pool = _near_misses(names)
    rng = np.random.default_rng(5)
    raw = np.array([pool[i] for i in rng.integers(0, len(pool), 6000)], dtype=str)
    col = raw[::2] if form == "strided" else raw.astype(raw.dtype.newbyteorder(">"))
    assert not (col.flags.c_contiguous and col.dtype.isnative)
    _check(srt, col)
