"""The study loop's cheaper steps (issue 15, session 41): the crowding distance of one front at once
(`pareto.crowding_distance`, which survival takes for one front) against `crowding_distance_by_group`, the survival order's first rows against the full
order when the first front alone fills the population, and the journal lines of generations whose reasons come coded
by their parts against reasons given row by row."""

from __future__ import annotations

import numpy as np
import pytest

from dse.pareto import crowding_distance, crowding_distance_by_group
from dse.runs.colpart import Coded
from dse.study.samplers import survival_order

from _objectives import float_bits, tied_objectives  # noqa: E402


@pytest.mark.parametrize("seed", range(8))
def test_one_front_crowding_is_crowding_by_group_of_one_group(seed):
    """Bit for bit, with ties, duplicate rows, signed zeros, flat objectives (a range of 0) and 0-3 rows."""
    rng = np.random.default_rng(seed)
    for t in range(300):
        n, m = int(rng.integers(0, 40)), int(rng.integers(1, 5))
        F = tied_objectives(rng, t, n, m)
        if n and t % 7 == 0:
            F[:, -1] = 3.0  # an objective every row ties on
        want = crowding_distance_by_group(F, np.zeros(n, dtype=np.int64))
        assert np.array_equal(float_bits(crowding_distance(F)), float_bits(want))


def test_one_front_crowding_known_values():
    F = np.array([[0.0, 4.0], [1.0, 3.0], [3.0, 1.0], [4.0, 0.0]])
    # objective 0 (values 0, 1, 3, 4; range 4): inner rows (3 - 0) / 4 and (4 - 1) / 4; objective 1 the same mirrored
    assert crowding_distance(F).tolist() == [np.inf, 0.75 + 0.75, 0.75 + 0.75, np.inf]


@pytest.mark.parametrize("seed", range(6))
def test_survival_when_the_first_front_fills_the_population(seed):
    """Continuous objectives on a trade-off surface: the first front alone holds more than `keep` rows, so only its
    crowding is computed; the first `keep` rows, their rank and crowding are those of the full order."""
    rng = np.random.default_rng(seed)
    n, k = 200, 100
    a = rng.random((n, 2))
    F = np.column_stack([a[:, 0], a[:, 1], 2.0 - a[:, 0] - a[:, 1] + 0.05 * rng.random(n)])
    cv = np.where(rng.random(n) < 0.9, 0.0, rng.random(n))
    F[rng.random(n) < 0.02] = np.inf
    full, rank, crowd = survival_order(F, cv)
    part, rank_k, crowd_k = survival_order(F, cv, keep=k)
    assert np.count_nonzero(rank == 0) > k  # (the case under test)
    assert part[:k].tolist() == full[:k].tolist()
    assert np.array_equal(rank_k[part[:k]], rank[full[:k]])
    assert np.array_equal(float_bits(crowd_k[part[:k]]), float_bits(crowd[full[:k]]))


def test_journal_lines_of_coded_reasons_are_those_of_plain_ones(tmp_path, monkeypatch):
    """`_batch_texts` of generations whose reasons are `Coded` (as their parts code them) and of the same generations
    with one reason text per row give the same journal bytes."""
    from _spaces import study_file
    from dse.study.runner import StudyRunner, _GenerationRecords
    from dse.study.spec import load_study

    monkeypatch.setenv("DSE_MIRROR_PROCESS", "never")
    runner = StudyRunner(load_study(study_file(tmp_path, budget={"trials": 8})), tmp_path / "r")
    runner.run()
    rng = np.random.default_rng(3)
    width = runner.codec.width
    gens_coded, gens_plain = [], []
    for b in range(3):
        n = 6
        X = runner.codec.random(rng, n)
        Y = rng.normal(size=(n, len(runner.objectives)))
        cmat = np.where(rng.random((n, len(runner.constraint_keys))) < 0.5, 0.0, rng.random((n, len(
            runner.constraint_keys))))
        failed = rng.random(n) < 0.2
        feasible = ~failed & (cmat <= 0).all(axis=1)
        values = ["", "violates x", f"gen {b}: too hot", "evaluation error: é"]
        codes = rng.integers(0, len(values), n).astype(np.int32)
        codes[feasible] = 0
        key = {"system_cost_usd": rng.random(n)}
        args = (X, failed, Y, cmat, feasible)
        tail = (key, b, "2026-12-03T22:00:00.000000+00:00", "2026-12-03T22:00:01.000000+00:00")
        gens_coded.append(_GenerationRecords(*args, Coded(values, codes), *tail))
        gens_plain.append(_GenerationRecords(*args, np.array(values, dtype=object)[codes], *tail))
    assert width == X.shape[1]
    head = '{"op_code":4,"worker_id":"w","study_id":0,'
    assert runner._batch_texts(gens_coded, head) == runner._batch_texts(gens_plain, head)
    assert runner._batch_texts(gens_coded) == runner._batch_texts(gens_plain)
    # a run of both kinds (a resumed run's stored generations, then live ones)
    assert runner._batch_texts(gens_plain[:1] + gens_coded[1:], head) == runner._batch_texts(gens_plain, head)
