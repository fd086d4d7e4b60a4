"""The cached / table-driven paths of DesignArrays.from_columns give what the per-knob definitions give."""

import numpy as np

from dse.model.arrays import DesignArrays, _lookup, _Flags
from dse.model.knobs import BY_NAME, KNOBS, BoundsTable
from dse.model.technology import default_technology


def test_bounds_table_matches_each_knobs_in_bounds():
    knobs = tuple(k for k in KNOBS if k.numeric)
    rng = np.random.default_rng(3)
    edges = sorted({x for k in knobs for b in (k.low, k.high) if b is not None
                    for x in (b, b - 0.5, b + 0.5, np.nextafter(b, np.inf), np.nextafter(b, -np.inf))})
    vals = np.concatenate([edges, [np.nan, np.inf, -np.inf, 0.0, 1.0, 2.5, 1e30, -1e30],
                           rng.normal(0, 1e4, 200), rng.integers(-20, 5000, 200)]).astype(float)
    table = BoundsTable(knobs).in_bounds(np.broadcast_to(vals, (len(knobs), len(vals))))
    for j, k in enumerate(knobs):
        assert np.array_equal(table[j], k.in_bounds(vals)), k.name


def test_lookup_indexes_names_and_flags_unknown_ones():
    names = ["n5", "n3", "n7"]  # not sorted: the index is the position in this list
    flags = _Flags(5)
    idx, raw, at = _lookup({"chip.process_node": np.array(["n7", "n5", "n55", "n3", ""])}, "chip.process_node",
                           names, 5, flags, "process node")
    assert idx.tolist() == [2, 0, 0, 1, 0]  # unknown -> 0, flagged
    assert at.tolist() == [2, 0, 3, 1, 3]  # unknown -> len(names)
    assert raw.tolist() == ["n7", "n5", "n55", "n3", ""]
    assert flags.valid.tolist() == [True, True, False, True, False]
    assert flags.reason[2].startswith("chip.process_node: ") and "n55" in flags.reason[2]


def test_same_arrays_whatever_else_is_in_the_call():
    """A design's arrays do not depend on the other rows of its call (caches are per value, not per call)."""
    tech = default_technology()
    cols = {"chip.process_node": np.array(["n5", "n3", "n7", "n5"]),
            "chip.precisions": np.array([["bf16", "fp8"], ["bf16"], ["int8", "fp9"], []], dtype=object),
            "chip.memory": np.array(["hbm3e", "none", "hbm3e", "hbm9"]),
            "chip.cores": np.array([64, 0, 10, 3])}
    whole = DesignArrays.from_columns(cols, tech)
    for i in range(4):
        one = DesignArrays.from_columns({k: v[i:i + 1] for k, v in cols.items()}, tech)
        assert one.reason[0] == whole.reason[i] and one.valid[0] == whole.valid[i]
        for p, s in whole.speedup.items():
            assert one.speedup[p][0] == s[i]
        assert one.mem_gb[0] == whole.mem_gb[i] and one.wafer_price_usd[0] == whole.wafer_price_usd[i]
    assert not whole.valid[2] and "fp9" in whole.reason[2]
    assert "at least one precision" in whole.reason[3] and "hbm9" in whole.reason[3]
    assert BY_NAME["chip.cores"].rule() in whole.reason[1]


def test_precision_lists_and_strings_read_the_same():
    """A column of lists (grouped by items) and the same sets as 'a, b' strings give the same speedups and reasons."""
    tech = default_technology()
    sets = [["bf16", "fp8"], ["fp8", "bf16"], [], ["bf16", "fp9"], ("int8",), ["bf16", "fp8"]]
    as_lists = np.empty(len(sets), dtype=object)
    as_lists[:] = sets
    as_text = np.array([", ".join(x) for x in sets], dtype=object)
    a = DesignArrays.from_columns({"chip.precisions": as_lists}, tech)
    b = DesignArrays.from_columns({"chip.precisions": as_text}, tech)
    assert a.reason.tolist() == b.reason.tolist() and a.valid.tolist() == [True, True, False, False, True, True]
    for p in a.speedup:
        assert np.array_equal(a.speedup[p], b.speedup[p])
    assert a.speedup["fp8"][0] > 0 and a.speedup["int8"][0] == 0 and a.speedup["int8"][4] > 0


def test_cached_tables_follow_the_technology():
    """Technology tables are cached per table entry: a technology with other values (or another memory) reads its own."""
    from dse.model.technology import load_technology

    base = default_technology()
    cols = {"chip.process_node": np.array(["n5", "n5"]), "chip.memory": np.array(["hbm3e", "hbm9"])}
    a = DesignArrays.from_columns(cols, base)
    t = load_technology({"process_nodes": {"n5": {"wafer_price_usd": 20000}},
                         "memories": {"hbm9": {"bw_gbps_per_stack": 4000, "capacity_gb_per_stack": 96,
                                               "usd_per_gb": 30, "pj_per_bit": 2, "phy_area_mm2_per_stack": 30,
                                               "needs_interposer": True, "footprint_mm2_per_stack": 121,
                                               "source": "what-if"}}})
    b = DesignArrays.from_columns(cols, t)
    assert a.wafer_price_usd[0] == base.process_nodes["n5"].wafer_price_usd and b.wafer_price_usd[0] == 20000
    assert not a.valid[1] and "hbm9" in a.reason[1]
    assert b.valid[1] and b.mem_pj_per_bit[1] == 2 and b.mem_pj_per_bit[0] == a.mem_pj_per_bit[0]
    assert DesignArrays.from_columns(cols, base).wafer_price_usd[0] == a.wafer_price_usd[0]


def test_precision_column_of_one_shared_list_or_arrays():
    """A fixed set (one list object on every row), equal lists, and rows that are numpy arrays read alike."""
    tech = default_technology()
    one = ["bf16", "int8"]
    shared = np.empty(3, dtype=object)
    shared[:] = [one, one, one]
    equal = np.empty(3, dtype=object)
    equal[:] = [list(one), list(one), list(one)]
    arrays = np.empty(3, dtype=object)
    arrays[:] = [np.array(one), np.array(one), np.array(["bf16"])]
    ref = DesignArrays.from_columns({"chip.precisions": "bf16,int8", "chip.cores": np.ones(3)}, tech)
    for col in (shared, equal, arrays):
        got = DesignArrays.from_columns({"chip.precisions": col}, tech)
        assert got.valid.all()
        for p in ref.speedup:
            assert np.array_equal(got.speedup[p][:2], ref.speedup[p][:2]), p
    assert got.speedup["int8"][2] == 0 and got.speedup["bf16"][2] > 0
