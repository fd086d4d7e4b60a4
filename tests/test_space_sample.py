"""`dse.study.samplers.sample_space`, the random designs of the property tests and benchmarks
(tests/_designs.py): every knob of the space, each value inside its own distribution, inactive knobs at
their neutral value, the same columns for the same seed, and a pinned scenario that changes only what it
pins."""

from __future__ import annotations

import numpy as np
import optuna

from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology
from dse.study.space import load_space
from _designs import FULL_SPACE, random_designs


def test_every_knob_of_the_space_within_its_distribution():
    space = load_space(FULL_SPACE)
    cols = random_designs(2000, 0)
    assert list(cols) == space.names and all(len(v) == 2000 for v in cols.values())
    for name, v in space.fixed.items():
        assert all(x == v for x in cols[name].tolist()), name
    for name, k in space.knobs.items():
        col = cols[name]
        active = np.broadcast_to(np.asarray(k.when.truth(cols), bool) if k.when else True, col.shape)
        assert (col[~active] == k.neutral).all(), name
        d, live = k.dist, col[active]
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            assert set(live.tolist()) == set(d.choices), name  # 2,000 draws reach every choice
        else:
            assert live.min() >= d.low and live.max() <= d.high, name
            if k.kind == "int":
                assert col.dtype == np.int64, name
    assert DesignArrays.from_columns(cols, default_technology()).n == 2000


def test_log_ranges_are_drawn_log_uniform():
    cols = random_designs(20_000, 1)
    sram = load_space(FULL_SPACE).knobs["chip.sram_mb"].dist  # a log range: its geometric mid splits the draws
    below = np.mean(cols["chip.sram_mb"] < np.sqrt(sram.low * sram.high))
    assert abs(below - 0.5) < 0.02


def test_same_seed_same_designs_and_a_pin_changes_only_what_it_pins():
    a, b, c = random_designs(300, 4), random_designs(300, np.random.default_rng(4)), random_designs(300, 5)
    assert all(np.array_equal(a[k], b[k]) for k in a if a[k].dtype != object)
    assert not np.array_equal(a["chip.cores"], c["chip.cores"])
    pinned = random_designs(300, 4, {"system.num_chips": 1, "chip.memory": {"choices": ["hbm3", "none"]}})
    assert set(pinned) == set(a)
    assert (pinned["system.num_chips"] == 1).all() and set(pinned["chip.memory"].tolist()) == {"hbm3", "none"}
    assert ((pinned["chip.memory"] == "none") == (pinned["chip.memory_stacks"] == 0)).all()
