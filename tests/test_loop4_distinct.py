"""The array NSGA-II asks the first children that repeat neither a design of its population nor an earlier child
(pymoo's NSGA-II eliminates such duplicates too); when too few are, the first of the others fill the generation."""

from __future__ import annotations

import numpy as np

from dse.study.samplers import ArrayNSGAII, design_keys
from _spaces import SPACE
from dse.study.space import SearchSpace, SearchSpaceSpec


def _ga(pop: int = 12) -> ArrayNSGAII:
    ga = ArrayNSGAII(SearchSpace(SearchSpaceSpec(**SPACE)), population_size=pop)
    rng = np.random.default_rng(0)
    X, _ = ga.ask(rng, pop)
    F = rng.random((pop, 2))
    ga.observe(X, F, np.zeros(pop))
    return ga


def test_children_asked_are_new_designs_in_bred_order():
    ga = _ga()
    X, cols = ga.ask(np.random.default_rng(3), 12)
    keys = design_keys(X)
    assert len(set(keys)) == 12 and not set(keys) & set(design_keys(ga.X))
    # they are the first distinct new ones of the children bred, in the order bred
    rng = np.random.default_rng(3)
    ga.pool = 1
    bred, _ = ga.ask(rng, 24)  # (the same draws: pool x n children from the same stream)
    seen, want = set(design_keys(ga.X)), []
    for i, k in enumerate(design_keys(bred)):
        if k not in seen and len(want) < 12:
            seen.add(k)
            want.append(i)
    assert np.array_equal(X, bred[want], equal_nan=True)
    for name, col in cols.items():  # the knob columns are the rows asked
        assert len(col) == 12, name
    # the same state and seed ask the same generation (a resumed run asks what the live run asked)
    ga.pool = 2
    again, _ = ga.ask(np.random.default_rng(3), 12)
    assert np.array_equal(again, X, equal_nan=True)


def test_too_few_new_children_are_filled_with_the_first_repeats():
    ga = _ga()
    X = np.vstack([ga.X[:3], ga.X[:3], ga.X[5:6]])  # 6 repeats of the population, then a population design
    rows, keys = ga._distinct(np.vstack([X, np.full((1, X.shape[1]), 7.0)]), 4)  # one new design, last
    assert rows.tolist() == [0, 1, 2, 7]  # the new one, then the first repeats, in bred order
    assert keys == [design_keys(X)[i] for i in (0, 1, 2)] + design_keys(np.full((1, X.shape[1]), 7.0))

