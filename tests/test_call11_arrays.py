"""A name knob given as one name for every row is looked up once per (knob, name, allowed names) and kept
(`arrays._ONE_NAME`, issue 15 session 41): later calls, of any length, read as the name repeated per row, known or not,
and a technology whose table lists other names looks the name up again."""

from __future__ import annotations

import numpy as np

from dse.model import arrays
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology, load_technology
from test_arrays_scalar_names import _same


def test_kept_lookups_read_as_the_column_every_time():
    tech = default_technology()
    arrays._ONE_NAME.clear()
    for n in (3, 7, 3, 2):  # the first call looks each name up, the others reuse it
        base = {"chip.cores": np.arange(1, n + 1) * 16, "chip.clock_ghz": np.full(n, 1.2)}
        for knob, value in (("chip.process_node", "n5"), ("chip.process_node", "n9"), ("chip.memory", "bogus"),
                            ("chip.memory", "hbm3e")):
            scalar = DesignArrays.from_columns({**base, knob: value}, tech)
            _same(scalar, DesignArrays.from_columns({**base, knob: np.full(n, value)}, tech))
    assert any(k[:2] == ("chip.process_node", "n9") for k in arrays._ONE_NAME)


def test_a_technology_with_other_names_looks_the_name_up_again():
    base = {"chip.cores": np.full(4, 32), "chip.memory": "hbm9"}
    plain = DesignArrays.from_columns(base, default_technology())
    assert not plain.valid.any() and "chip.memory" in plain.reason[0]
    hbm3 = default_technology().memories["hbm3"].model_dump()
    tech = load_technology({"memories": {"hbm9": hbm3}})
    more = DesignArrays.from_columns(base, tech)  # hbm9 is a memory of this technology
    assert more.valid.all() and more.names["chip.memory"].tolist() == ["hbm9"] * 4
    _same(more, DesignArrays.from_columns({**base, "chip.memory": np.full(4, "hbm9")}, tech))
