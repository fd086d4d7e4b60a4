"""`KnobCodec.canonical` takes the `when` of a conditional knob that reads one always-active categorical knob from a
per-choice table (`_when_tables`, issue 15): the same matrix and columns as evaluating the condition on the
generation's columns, for every kind of condition (the others keep that general path), with and without
missing values, on the shipped spaces and on one made for it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from dse.study.samplers import KnobCodec
from dse.study.space import SearchSpace, SearchSpaceSpec

ROOT = Path(__file__).resolve().parents[1]

# conditions of every shape: on one categorical knob (`!=`, `==`, `in`, `not in`, `not`, `or` of the same knob, a
# list-valued choice's knob), on a numeric knob, on two knobs, on a fixed knob, on a conditional knob
SPACE = {
    "name": "whens",
    "params": {
        "chip.process_node": {"choices": ["n7", "n5", "n3"]},
        "chip.memory": {"choices": ["hbm3", "hbm3e", "none"]},
        "system.num_chips": {"choices": [1, 2, 4, 8]},
        "chip.cores": {"low": 8, "high": 128, "log": True, "type": "int"},
        "chip.memory_stacks": {"low": 1, "high": 6, "type": "int", "when": "chip.memory != 'none'", "inactive": 0},
        "chip.sram_mb": {"low": 16, "high": 256, "log": True, "type": "float",
                         "when": "chip.process_node in ['n5', 'n3']", "inactive": 64.0},
        "chip.clock_ghz": {"low": 0.8, "high": 2.0, "when": "not (chip.process_node == 'n7')", "inactive": 1.0},
        "chip.links": {"low": 4, "high": 36, "step": 4, "type": "int",
                       "when": "system.num_chips >= 2 or system.num_chips == 1", "inactive": 4},
        "chip.io_dies": {"low": 1, "high": 4, "type": "int", "when": "chip.cores > 32", "inactive": 1},
        "chip.array_rows": {"choices": [64, 128], "when": "chip.memory == 'none' and chip.process_node == 'n3'",
                            "inactive": 128},
        "chip.array_cols": {"choices": [64, 128], "when": "chip.packaging == 'cowos_s'", "inactive": 128},
        "chip.mma_operands": {"choices": ["shared", "registers"], "when": "chip.memory_stacks > 2",
                              "inactive": "shared"},
    },
    "fixed": {"chip.packaging": "cowos_s"},
}


def _space(name: str) -> SearchSpace:
    if name == "whens":
        return SearchSpace(SearchSpaceSpec(**SPACE))
    return SearchSpace(SearchSpaceSpec(**yaml.safe_load((ROOT / "search_spaces" / f"{name}.yaml").read_text())))


def _general(codec: KnobCodec) -> KnobCodec:
    """A codec of the same space whose conditions are all evaluated on the columns (no table)."""
    other = KnobCodec(codec.space)
    other._tables = {}
    return other


@pytest.mark.parametrize("space", ["whens", "full", "datacenter"])
@pytest.mark.parametrize("holes", [False, True])
def test_canonical_by_the_tables_equals_the_conditions_on_the_columns(space, holes):
    codec = KnobCodec(_space(space))
    rng = np.random.default_rng(7)
    X = codec.random(rng, 400)
    if holes:  # missing values (an offspring of parents where a knob was off): drawn, and no table is used
        X[rng.random(X.shape) < 0.1] = np.nan
    got_X, got = codec.canonical(X.copy(), np.random.default_rng(3))
    want_X, want = _general(codec).canonical(X.copy(), np.random.default_rng(3))
    assert np.array_equal(got_X, want_X, equal_nan=True)
    assert list(got) == list(want)
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        assert got[name].tolist() == want[name].tolist(), name
    if not holes:
        assert any(t is not None for t in codec._when_tables().values())


def test_tables_only_for_a_condition_on_one_always_active_categorical_knob():
    codec = KnobCodec(_space("whens"))
    tables = codec._when_tables()
    col = {k.name: j for j, k in enumerate(codec.knobs)}
    by_name = {codec.knobs[j].name: t for j, t in tables.items()}
    memory, node, chips = col["chip.memory"], col["chip.process_node"], col["system.num_chips"]
    # choices in the order the space lists them: hbm3, hbm3e, none / n7, n5, n3 / 1, 2, 4, 8
    assert by_name["chip.memory_stacks"][0] == memory
    assert by_name["chip.memory_stacks"][1].tolist() == [True, True, False]
    assert by_name["chip.sram_mb"][0] == node and by_name["chip.sram_mb"][1].tolist() == [False, True, True]
    assert by_name["chip.clock_ghz"][1].tolist() == [False, True, True]
    assert by_name["chip.links"][0] == chips and by_name["chip.links"][1].tolist() == [True, True, True, True]
    # a numeric knob, two knobs, a fixed knob, a conditional knob: evaluated on the columns
    for name in ("chip.io_dies", "chip.array_rows", "chip.array_cols", "chip.mma_operands"):
        assert by_name[name] is None, name
    assert set(by_name) == {k.name for k in codec.knobs if k.when is not None}
