"""The study loop's cheaper steps (issue 15, session 45): the tournaments' draws taken at once, the crowding order of
the first front from its dense ranks, the survival order without the violations' ranks when the feasible rows fill the
population, and the scores' masks and reasons with fewer passes, each against a plain reference (ties, signed zeros,
failed and non-finite rows)."""

from __future__ import annotations

import numpy as np
import pytest

from dse.pareto import crowding_distance, crowding_distance_finite, pareto_rank, pareto_rank_finite
from dse.study.samplers import survival_order

from _objectives import float_bits, tied_objectives  # noqa: E402
from test_sel14_steps import _survival  # noqa: E402


@pytest.mark.parametrize("k", [1, 2, 3, 50, 100, 101, 1000, 2**31 + 5, 2**32 - 1])
def test_one_draw_of_4n_integers_is_four_draws_of_n(k):
    """What `ArrayNSGAII._tournaments` relies on: numpy's bounded integers below 2**32 give the same values and leave
    the generator in the same state whether drawn as four calls of n or one of 4n (odd n included: the unused half of a
    64-bit word is kept by the bit generator between calls)."""
    for seed in range(40):
        for n in (1, 3, 99, 200):
            a, b = np.random.default_rng(seed), np.random.default_rng(seed)
            four = np.concatenate([a.integers(0, k, n) for _ in range(4)])
            one = b.integers(0, k, 4 * n)
            assert np.array_equal(four, one)
            assert a.bit_generator.state == b.bit_generator.state and a.random() == b.random()


@pytest.mark.parametrize("seed", range(6))
def test_front_crowding_from_dense_ranks_is_the_crowding(seed):
    """`pareto_rank_finite(..., dense=True)`: the same ranks, and dense ranks whose stable order of any subset of rows
    is the stable order of their values, so that `crowding_distance_finite` with that order gives its own values bit
    for bit (ties, duplicate rows, 0.0 and -0.0, a constant objective)."""
    rng = np.random.default_rng(seed)
    for t in range(150):
        n, m = int(rng.integers(1, 120)), int(rng.integers(2, 5))
        F = tied_objectives(rng, t, n, m)
        if t % 5 == 0:
            F[rng.random(n) < 0.3, 0] = rng.choice([0.0, -0.0])
        if t % 7 == 0:
            F[:, -1] = 2.5
        keep = None if t % 3 == 0 else max(1, n // 2)
        r, R = pareto_rank_finite(F, max_rows=keep, dense=True)
        assert np.array_equal(r, pareto_rank(F, max_rows=keep))
        if R is None:  # (two objectives: ranked another way)
            assert m < 3
            continue
        assert R.dtype == np.int16 and R.shape == (m, n)
        for j in range(m):  # equal values share a dense rank, smaller values have smaller ones
            assert np.array_equal(R[j][:, None] < R[j][None, :], F[:, j][:, None] < F[:, j][None, :])
        sub = np.flatnonzero(rng.random(n) < 0.6) if t % 2 else np.flatnonzero(r == 0)
        if sub.size <= 2:
            continue
        order = np.argsort(R[:, sub], axis=1, kind="stable")
        assert np.array_equal(order, np.argsort(np.ascontiguousarray(F[sub].T), axis=1, kind="stable"))
        got = crowding_distance_finite(F[sub], order)
        assert np.array_equal(float_bits(got), float_bits(crowding_distance(F[sub])))


@pytest.mark.parametrize("seed", range(8))
def test_survival_when_the_feasible_rows_fill_the_population(seed):
    """Feasible rows at least `keep` (and, as before, fewer), infeasible (tied violations) and failed rows beside them: the first `keep` rows of
    the order, their rank and crowding are the plain survival's (the other rows share the rank after the feasible
    ones), with one front holding `keep` rows or several."""
    rng = np.random.default_rng(seed)
    for t in range(40):
        n = int(rng.integers(8, 90))
        F = tied_objectives(rng, t, n, 3)
        if t % 2:  # a trade-off surface: one front holds most rows
            a = rng.random((n, 2))
            F = np.column_stack([a[:, 0], a[:, 1], 2.0 - a[:, 0] - a[:, 1]])
        cv = np.where(rng.random(n) < 0.8, 0.0, rng.integers(1, 4, n) / 2.0)
        F[rng.random(n) < 0.05, 0] = np.inf
        cv[rng.random(n) < 0.05] = np.nan
        feasible = int((np.isfinite(F).all(axis=1) & np.isfinite(cv) & (cv <= 0)).sum())
        for keep in sorted({1, max(1, feasible // 2), max(1, feasible - 1), max(1, feasible), feasible + 1,
                            feasible + 2, n}):
            got = survival_order(F, cv, keep=keep)
            want = _survival(F, cv, keep)
            top = got[0][:keep]
            assert top.tolist() == want[0][:keep].tolist()
            assert got[1][top].tolist() == want[1][top].tolist()
            assert np.array_equal(float_bits(got[2][top]), float_bits(want[2][top]))
            if keep <= feasible:  # (else the violations' ranks, as before)
                rest = np.setdiff1d(np.arange(n), np.flatnonzero(np.isfinite(F).all(axis=1) & (cv <= 0)))
                assert (got[1][rest] == got[1].max()).all()


def _plain_scores(names: list[str], failed_text: dict[int, str], ok: np.ndarray, model_reason: np.ndarray,
                  cmat: np.ndarray) -> tuple[list[bool], list[str]]:
    """Feasibility and reason of each row, one row at a time: a failed row's error; the model's reason (or
    "infeasible") for a row the model rejects; else the constraints it violates, in the study's order."""
    feasible, reason = [], []
    for i in range(len(ok)):
        if i in failed_text:
            feasible.append(False)
            reason.append(failed_text[i])
        elif not ok[i]:
            feasible.append(False)
            reason.append(str(model_reason[i]) or "infeasible")
        else:
            bad = [names[j] for j in range(1, cmat.shape[1]) if cmat[i, j] > 0]
            feasible.append(not bad)
            reason.append("violates " + "; ".join(bad) if bad else "")
    return feasible, reason


@pytest.mark.parametrize("constraints", [["tdp_w <= 400"], ["tdp_w <= 400", "chip_cost_usd <= 100"], []])
def test_scores_masks_and_reasons_are_the_plain_ones(tmp_path, constraints):
    """`score`'s feasibility and reasons (one constraint: one text for every violating row; several: one per pattern;
    none) against the row-by-row rule, with failed chunks, non-finite metrics and model-infeasible rows, or none of
    them; `_scored`'s fitness takes the failed rows as the bad ones (its Y is finite)."""
    from _spaces import study_file
    from dse.study.execution import EvalError
    from dse.study.runner import StudyRunner
    from dse.study.spec import load_study

    runner = StudyRunner(load_study(study_file(tmp_path, constraints=constraints)), tmp_path / "r")
    rng = np.random.default_rng(len(constraints))
    for t in range(60):
        n = int(rng.integers(1, 40))
        metrics = {"feasible": rng.random(n) < 0.8,
                   "reason": rng.choice(np.array(["", "too big", "no fit"], dtype=object), n),
                   "tdp_w": rng.choice([100.0, 400.0, 401.0, 900.0], n),
                   "chip_cost_usd": rng.choice([50.0, 100.0, 150.0], n)}
        for k in runner.metrics:
            metrics.setdefault(k, rng.random(n) + 0.5)
        failed_text: dict[int, str] = {}
        if t % 3 == 1:  # a non-finite metric: those rows fail
            bad = rng.random(n) < 0.2
            metrics["tdp_w"] = np.where(bad, np.nan, metrics["tdp_w"])
            failed_text.update({int(i): "evaluation error: non-finite metric tdp_w" for i in np.flatnonzero(bad)})
        cols = {k: np.zeros(n) for k in runner.space.names}
        results = [(slice(0, n), metrics)]
        if t % 3 == 2 and n > 3:  # a failed chunk
            a = n // 2
            results = [(slice(0, a), {k: v[:a] for k, v in metrics.items()}), (slice(a, n), EvalError("boom"))]
            failed_text.update({i: "boom" for i in range(a, n)})
        sc = runner._scored(cols, results, n)
        ok = metrics["feasible"]
        feasible, reason = _plain_scores(runner.constraint_names, failed_text, ok, metrics["reason"], sc["cmat"])
        assert sc["failed"].tolist() == [i in failed_text for i in range(n)]
        assert sc["feasible"].tolist() == feasible
        assert sc["reason"].tolist() == reason
        assert np.isfinite(sc["Y"]).all() and np.isfinite(sc["cmat"]).all()
        F, cv = sc["fitness"]
        assert np.array_equal(np.isinf(F).all(axis=1), sc["failed"]) and np.array_equal(np.isinf(cv), sc["failed"])
        assert np.array_equal(cv[~sc["failed"]], sc["violation"][~sc["failed"]])


class _Toy:
    """A pure toy model: v = 2 x per design; a call fails (raises) while `fail` is set. Counts the designs it gets."""

    def __init__(self):
        self.fail = False
        self.designs = 0

    def __call__(self, cols):
        x = np.asarray(cols["x"], dtype=float)
        self.designs += len(x)
        if self.fail:
            raise RuntimeError("toy failure")
        return {"v": 2.0 * x, "feasible": np.ones(len(x), dtype=bool), "reason": np.full(len(x), "", dtype=object)}


@pytest.mark.parametrize("seed", range(6))
def test_reused_results_are_the_plain_rule(tmp_path, seed):
    """`_submit_cached` / its collect over batches with designs repeated within a batch, repeating a stored design, or
    in flight in a batch submitted before (collected later), some chunks failing: every row gets its design's result or
    the failure of the chunk that evaluated it, and the model gets each design as the plain rule sends it (a design
    once, unless its evaluation failed or was in no batch before)."""
    from _spaces import study_file
    from dse.study.cache import ResultCache
    from dse.study.execution import EvalError, SerialExecutor
    from dse.study.runner import StudyRunner
    from dse.study.samplers import design_keys
    from dse.study.spec import load_study

    toy = _Toy()
    runner = StudyRunner(load_study(study_file(tmp_path)), tmp_path / "r", evaluator=toy,
                         executor=SerialExecutor(toy))
    runner.cache, runner._flying, runner.evaluated, runner.model_process = ResultCache(), set(), 0, None
    runner._together = None
    rng = np.random.default_rng(seed)
    stored: set[float] = set()  # designs with a stored result (the plain rule's state)
    flying: dict[float, int] = {}  # design -> batches in flight that evaluate it
    want_designs = 0
    queue = []
    for b in range(60):
        n = int(rng.integers(1, 12))
        x = np.where(rng.random(n) < 0.4, rng.integers(0, 8 * b + 8, n), 8 * b + 8 + rng.integers(0, 6, n)).astype(float)
        if n > 2 and b % 2:  # a design twice in the batch
            x[-1] = x[0]
        keys = design_keys(x[:, None])
        fail = bool(rng.random() < 0.15)
        # the plain rule at submit: new designs (not stored, not in flight) once each go to the model now
        new = [v for v in dict.fromkeys(x.tolist()) if v not in stored and v not in flying]
        later = [v for v in dict.fromkeys(x.tolist()) if v not in stored and v in flying]
        want_designs += len(new)
        toy.fail = fail  # (the serial executor evaluates when collected: the flag is set again then)
        collect = runner._submit_cached({"x": x}, keys)
        for v in new:
            flying[v] = b
        queue.append((b, x, new, later, fail, collect))
        while queue and (len(queue) > 1 or rng.random() < 0.5 or b == 59):  # in submit order, sometimes later
            cb, cx, cnew, clater, cfail, ccollect = queue.pop(0)
            before = toy.designs
            toy.fail = cfail
            res = ccollect()
            for v in cnew:
                flying.pop(v, None)
                if not cfail:
                    stored.add(v)
            # designs in flight before, not stored once their batch came back: evaluated with this batch's chunk
            regone = [v for v in clater if v not in stored]
            want_designs += len(regone)
            if not cfail:
                stored.update(regone)
            assert toy.designs - before == len(cnew) * (1 if cnew else 0) + len(regone)
            failed_designs = set(cnew) | set(regone) if cfail else set()
            for s, r in res:
                for i in range(s.start, s.stop):
                    if cx[i] in failed_designs:
                        assert isinstance(r, EvalError), (cb, i)
                    else:
                        assert not isinstance(r, EvalError) and r["v"][i - s.start] == 2.0 * cx[i]
    assert toy.designs == want_designs


@pytest.mark.parametrize("seed", range(3))
def test_population_keys_carried_through_observe_are_its_rows_keys(seed):
    """The population's design keys taken from the generations' keys as the sampler keeps rows (not made again from its
    rows): the keys of its rows after every observe (generations in flight as the runner keeps them, one observed from
    a copy as a resumed run replays it, the population replaced from outside), and the same generations as a sampler
    that makes them from the rows each time."""
    from dse.study.samplers import ArrayNSGAII, design_keys
    from test_loop6_loop import _datacenter_space

    space = _datacenter_space()
    carry, plain = ArrayNSGAII(space, population_size=30), ArrayNSGAII(space, population_size=30)
    rng = np.random.default_rng(seed)
    flight = []
    for g in range(24):
        got = [ga.ask(np.random.default_rng(1000 * seed + g), 30)[0] for ga in (carry, plain)]
        assert np.array_equal(got[0], got[1], equal_nan=True)
        assert carry.keys_of(got[0]) == design_keys(got[0])
        plain._flight.clear()  # (its population's keys made from its rows)
        flight.append(got)
        if len(flight) <= carry.lag:
            continue
        Xc, Xp = flight.pop(0)
        F = np.round(rng.random((len(Xc), 3)), 1)
        cv = np.where(rng.random(len(Xc)) < 0.8, 0.0, rng.random(len(Xc)))
        carry.observe(Xc.copy() if g == 9 else Xc, F, cv)  # (g 9: a replayed generation, keys not known)
        plain.observe(Xp, F, cv)
        if g == 15:  # a population set from outside: its keys are made again
            carry.X = plain.X = carry.X[::-1].copy()
        assert np.array_equal(carry.X, plain.X, equal_nan=True)
        if carry._keys is not None and carry._keys[0] is carry.X:
            assert carry._keys[1] == design_keys(carry.X)
        else:
            assert g in (9, 15)


@pytest.mark.parametrize("which", ["datacenter", "tiny"])
def test_knob_columns_of_rows_are_the_general_paths(which):
    """`KnobCodec.columns` (the choices of every categorical knob indexed at once, a conditional knob's NaN mask taken
    once) gives the columns, types and order of `canonical`'s knob-by-knob path, inactive rows at their neutral value."""
    from _spaces import SPACE
    from dse.study.samplers import KnobCodec
    from dse.study.space import SearchSpace, SearchSpaceSpec
    from test_loop6_loop import _datacenter_space

    space = _datacenter_space() if which == "datacenter" else SearchSpace(SearchSpaceSpec(**SPACE))
    codec = KnobCodec(space)
    general = KnobCodec(space)
    general.canonical_values = lambda X, rng: False  # (the knob-by-knob path)
    for seed in range(5):
        rng = np.random.default_rng(seed)
        X, _ = codec.canonical(codec.random(rng, 60), rng)
        assert np.isnan(X).any()  # (inactive conditional knobs among the rows)
        got = codec.columns(X)
        want = general.canonical(X.copy(), np.random.default_rng(0))[1]
        assert list(got) == list(want)
        for k in want:
            assert got[k].dtype == want[k].dtype and got[k].tolist() == want[k].tolist(), k
