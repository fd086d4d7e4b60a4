"""chip_area reads the technology values of a row's packaging, memory and core style by the index from_columns keeps
(DesignArrays.name_at); a name from_columns does not know is read by the name itself, as before."""

import numpy as np

from dse.model import area
from dse.model.arrays import DesignArrays
from dse.model.knobs import BY_NAME
from dse.model.technology import default_technology


def _columns(tech):
    pkgs = BY_NAME["chip.packaging"].allowed(tech)
    mems = BY_NAME["chip.memory"].allowed(tech)
    styles = BY_NAME["chip.core_style"].allowed(tech)
    shore_only = [m for m in tech.shoreline.memory_edge_mm_per_stack if m not in mems]
    n = 3 * len(pkgs) * len(mems)
    rng = np.random.default_rng(3)
    return {"chip.packaging": rng.choice(pkgs + ["no_such_package"], n),
            "chip.memory": rng.choice(mems + ["no_such_memory"] + shore_only, n),
            "chip.core_style": rng.choice(styles + ["no_such_style"], n)}


def test_name_at_is_the_index_in_the_allowed_names():
    tech = default_technology()
    cols = _columns(tech)
    arr = DesignArrays.from_columns(cols, tech)
    for knob in cols:
        allowed = BY_NAME[knob].allowed(tech)
        want = [allowed.index(x) if x in allowed else len(allowed) for x in cols[knob].tolist()]
        assert arr.name_at[knob].tolist() == want
        sub = arr.take(np.arange(0, arr.n, 2))
        assert sub.name_at[knob].tolist() == want[::2]


def test_values_by_index_equal_values_by_name():
    """Every table's value of each row equals the one looked up by the row's name, known or not (a memory the
    shoreline table knows and the memory table does not: unknown to from_columns, its edge from that table)."""
    base = default_technology()
    shore = base.shoreline.model_copy(update={"memory_edge_mm_per_stack": {
        **base.shoreline.memory_edge_mm_per_stack, "hbm9": 12.5}})
    tech = base.model_copy(update={"shoreline": shore})
    cols = _columns(tech)
    assert "hbm9" in cols["chip.memory"].tolist()
    arr = DesignArrays.from_columns(cols, tech)
    assert not arr.valid.all()  # (unknown names are flagged, and still priced)
    for key, table in area._tech_names(tech).items():
        by_name = table.values[area._name_index(arr.names[table.knob], table.keys)]
        got = table.of(arr)
        assert got.dtype == by_name.dtype and got.tobytes() == by_name.tobytes(), key
    assert 12.5 in area._tech_names(tech)["memory_edge_mm"].of(arr).tolist()


def test_scalar_unknown_name_is_indexed_past_the_allowed_names():
    tech = default_technology()
    arr = DesignArrays.from_columns({"chip.cores": np.full(4, 8.0), "chip.packaging": "no_such_package"}, tech)
    assert arr.name_at["chip.packaging"].tolist() == [len(BY_NAME["chip.packaging"].allowed(tech))] * 4
    assert not arr.valid.any()
