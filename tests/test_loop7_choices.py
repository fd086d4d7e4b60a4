"""The array NSGA-II's variation of a categorical knob (`ArrayNSGAII._sbx_pm`, issue 15): polynomial mutation of the
choice index, as pymoo varies a choice coded as a number. Children are choices of their knob (or inactive),
a mutated choice mostly stays or moves to a neighbour, every choice is reached over generations, and the same
seed breeds the same children."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from dse.study.samplers import ArrayNSGAII
from dse.study.space import SearchSpace, SearchSpaceSpec

ROOT = Path(__file__).resolve().parents[1]


def _datacenter() -> SearchSpace:
    return SearchSpace(SearchSpaceSpec(**yaml.safe_load((ROOT / "search_spaces" / "datacenter.yaml").read_text())))


def _conditional_choice() -> SearchSpace:
    """A categorical knob that is inactive (NaN in the knob matrix) when the memory is none."""
    return SearchSpace(SearchSpaceSpec(**{
        "name": "cond",
        "params": {"chip.memory": {"choices": ["hbm3", "none"]},
                   "chip.process_node": {"choices": ["n7", "n5", "n3"], "when": "chip.memory != 'none'"},
                   "chip.cores": {"low": 8, "high": 128, "log": True, "type": "int"}},
        "fixed": {"system.num_chips": 1, "chip.packaging": "cowos_s"}}))


def _categorical(ga: ArrayNSGAII) -> list[tuple[int, int]]:
    return [(j, len(k.dist.choices)) for j, k in enumerate(ga.codec.knobs) if k.kind == "categorical"]


def test_children_are_choices_of_their_knob_or_inactive():
    for space in (_datacenter(), _conditional_choice()):
        ga = ArrayNSGAII(space, population_size=50, mutation_prob=0.5)
        rng = np.random.default_rng(1)
        A, _ = ga.codec.canonical(ga.codec.random(rng, 400), rng)
        B, _ = ga.codec.canonical(ga.codec.random(rng, 400), rng)
        C = ga._sbx_pm(rng, A, B)
        for j, k in _categorical(ga):
            x = C[:, j]
            on = ~np.isnan(x)
            assert (x[on] == np.rint(x[on])).all() and (x[on] >= 0).all() and (x[on] <= k - 1).all()
            assert not np.signbit(x[on]).any()  # no -0.0: the same design has one key
            assert not on[np.isnan(A[:, j]) & np.isnan(B[:, j])].any()  # no choice where neither parent has one


def test_a_mutated_choice_mostly_stays_and_else_moves_to_a_neighbour():
    ga = ArrayNSGAII(_datacenter(), population_size=50, mutation_prob=1.0, crossover_prob=0.0)
    rng = np.random.default_rng(2)
    X, _ = ga.codec.canonical(ga.codec.random(rng, 5000), rng)
    C = ga._sbx_pm(rng, X, X)
    for j, k in _categorical(ga):
        step = np.abs(C[:, j] - X[:, j])
        moved = step > 0
        assert 0 < moved.mean() < 0.5  # most mutations keep the choice
        assert (step[moved] == 1).mean() > 0.95  # and a change is almost always to a neighbour


def test_every_choice_is_reached_through_its_neighbours():
    ga = ArrayNSGAII(_datacenter(), population_size=50, mutation_prob=1.0, crossover_prob=0.0)
    rng = np.random.default_rng(3)
    X, _ = ga.codec.canonical(ga.codec.random(rng, 500), rng)
    cats = _categorical(ga)
    for j, _ in cats:
        X[:, j] = 0.0  # every design at its knobs' first choice
    seen = {j: set() for j, _ in cats}
    for _ in range(150):  # mutation after mutation
        X = ga._sbx_pm(rng, X, X)
        for j, _ in cats:
            seen[j].update(X[:, j].astype(int).tolist())
    assert all(seen[j] == set(range(k)) for j, k in cats)


def test_the_same_seed_breeds_the_same_generation():
    space = _datacenter()
    ga = ArrayNSGAII(space, population_size=40)
    rng = np.random.default_rng(4)
    X, _ = ga.codec.canonical(ga.codec.random(rng, 40), rng)
    ga.observe(X, rng.random((40, 3)), np.zeros(40))
    a, cols_a = ga.ask(np.random.default_rng(99), 40)
    b, cols_b = ga.ask(np.random.default_rng(99), 40)
    assert np.array_equal(a, b, equal_nan=True)
    assert all(np.array_equal(cols_a[k], cols_b[k]) for k in cols_a)
