"""The array NSGA-II (a generation bred as a knob matrix) and the result cache: determinism with a seed,
resume equality, repeats reused and counted, Optuna journal records, knob-matrix round trips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import polars as pl
import pytest

from dse.evaluate import evaluate
from dse.model.arrays import DesignArrays
from dse.model.technology import default_technology
from dse.study.evaluator import ModelEvaluator
from dse.study.runner import StudyRunner
from dse.study.samplers import ArrayNSGAII, KnobCodec, design_keys, make_generation_sampler, survival_order
from dse.study.space import SearchSpace, SearchSpaceSpec
from dse.study.spec import load_study
from _spaces import SPACE, study_file


def _study(tmp_path: Path, name: str = "a", space: dict | None = None, **over) -> Path:
    return study_file(tmp_path, name, space=space, **{"sampler": {"kind": "nsga2", "population_size": 8},
                                                       "budget": {"trials": 64}, "seed": 3, **over})


def _results(run_dir: Path) -> pl.DataFrame:
    return pl.read_parquet(run_dir / "results.parquet").drop("datetime_start", "datetime_complete")


class Counting(ModelEvaluator):
    """The model, counting the designs it is asked to evaluate."""

    designs = 0

    def __call__(self, columns):
        Counting.designs += len(next(iter(columns.values())))
        return super().__call__(columns)


def test_default_nsga2_uses_the_array_sampler_and_other_crossovers_use_optuna(tmp_path):
    st = load_study(_study(tmp_path))
    ga = make_generation_sampler(st.spec.sampler, st.space)
    assert isinstance(ga, ArrayNSGAII) and ga.crossover == "sbx"
    uni = load_study(_study(tmp_path, name="u", sampler={"kind": "nsga2", "population_size": 8, "crossover": "uniform"}))
    assert make_generation_sampler(uni.spec.sampler, uni.space).crossover == "uniform"
    st2 = load_study(_study(tmp_path, name="b", sampler={"kind": "nsga2", "population_size": 8,
                                                         "crossover": "blxalpha"}))
    assert make_generation_sampler(st2.spec.sampler, st2.space) is None
    st3 = load_study(_study(tmp_path, name="c", sampler={"kind": "tpe"}))
    assert make_generation_sampler(st3.spec.sampler, st3.space) is None


def test_same_seed_same_trials_other_seed_other_trials(tmp_path):
    cfg = _study(tmp_path)
    StudyRunner(load_study(cfg), tmp_path / "r1").run()
    StudyRunner(load_study(cfg), tmp_path / "r2").run()
    a, b = _results(tmp_path / "r1"), _results(tmp_path / "r2")
    assert a.height == 64 and a.equals(b)
    StudyRunner(load_study(_study(tmp_path, name="s", seed=4)), tmp_path / "r3").run()
    c = _results(tmp_path / "r3")
    assert not a.select("chip.cores", "chip.sram_mb").equals(c.select("chip.cores", "chip.sram_mb"))
    assert a["generation"].to_list() == [g for g in range(8) for _ in range(8)]


def test_resume_continues_as_an_uninterrupted_run(tmp_path):
    cfg = _study(tmp_path, budget={"trials": 100})
    StudyRunner(load_study(cfg), tmp_path / "ref").run()
    # as after a kill during generation 4: generations 0-3 are stored (a budget cut would store a short one)
    first = StudyRunner(load_study(cfg), tmp_path / "r", trials=32).run()
    assert first.summary["trials"] == 32
    res = StudyRunner(load_study(cfg), tmp_path / "r").run()
    assert res.resumed_from == 32 and res.summary["trials"] == 100
    assert _results(tmp_path / "ref").equals(_results(tmp_path / "r"))
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "r/journal.log")))
    trials = optuna.load_study(study_name="a", storage=storage).get_trials(deepcopy=False)
    assert [t.number for t in trials] == list(range(100))


def test_repeated_designs_reuse_the_result_and_are_counted(tmp_path):
    # 2 × 2 designs: after the first generation almost every trial repeats one
    space = {"name": "four", "params": {"chip.process_node": {"choices": ["n7", "n5"]},
                                        "chip.memory": {"choices": ["hbm3", "lpddr5x"]}},
             "fixed": {"system.num_chips": 1, "chip.packaging": "cowos_s", "chip.memory_stacks": 2}}
    cfg = _study(tmp_path, space=space, budget={"trials": 48})
    Counting.designs = 0
    res = StudyRunner(load_study(cfg), tmp_path / "r", evaluator=Counting("local")).run()
    df = _results(tmp_path / "r")
    assert df.height == 48  # every trial is recorded
    assert res.summary["designs_evaluated"] == Counting.designs <= 4
    assert res.summary["cache_hits"] == 48 - Counting.designs == int(df["repeat"].sum())
    # a repeat carries the metrics of its design's first trial
    first = df.filter(~pl.col("repeat"))
    joined = df.join(first, on=["chip.process_node", "chip.memory"], suffix="_first")
    assert (joined["local_llm.tpot_ms"] == joined["local_llm.tpot_ms_first"]).all()
    assert (joined["chip_cost_usd"] == joined["chip_cost_usd_first"]).all()


def test_the_journal_holds_every_trial_with_params_values_and_generation(tmp_path):
    StudyRunner(load_study(_study(tmp_path)), tmp_path / "r").run()
    df = _results(tmp_path / "r")
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(tmp_path / "r/journal.log")))
    study = optuna.load_study(study_name="a", storage=storage)
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 64 and study.metric_names == ["local_llm.tpot_ms", "chip_cost_usd"]
    for t, row in zip(trials, df.iter_rows(named=True)):
        assert t.system_attrs["NSGAIISampler:generation"] == row["generation"]
        assert t.params["chip.cores"] == row["chip.cores"] and t.params["chip.sram_mb"] == row["chip.sram_mb"]
        assert ("chip.memory_stacks" in t.params) == (row["chip.memory"] != "none")
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.values == [row["local_llm.tpot_ms"], row["chip_cost_usd"]]
        assert set(t.constraints) == {"model: feasible", "tdp_w <= 400"}
        assert t.user_attrs["feasible"] == row["feasible"]


def test_knob_matrix_round_trip_and_inactive_knobs():
    space = SearchSpace(SearchSpaceSpec(**SPACE))
    codec = KnobCodec(space)
    rng = np.random.default_rng(0)
    X, cols = codec.canonical(codec.random(rng, 200), rng)
    back = codec.encode(cols)
    assert np.array_equal(np.isnan(back), np.isnan(X)) and np.allclose(np.nan_to_num(back), np.nan_to_num(X))
    off = cols["chip.memory"] == "none"
    assert off.any() and (cols["chip.memory_stacks"][off] == 0).all()
    assert np.isnan(X[off, codec.names.index("chip.memory_stacks")]).all()
    assert ((cols["chip.memory_stacks"][~off] >= 1) & (cols["chip.memory_stacks"][~off] <= 6)).all()
    for name, d in space.distributions().items():
        if hasattr(d, "low"):
            v = cols[name][~off] if name == "chip.memory_stacks" else cols[name]
            assert v.min() >= d.low and v.max() <= d.high
    keys = design_keys(X)
    assert design_keys(codec.encode(cols)) == keys
    params = codec.params(X)
    assert all(("chip.memory_stacks" in p) == (not o) for p, o in zip(params, off))


def test_survival_puts_feasible_fronts_first_then_least_violation_then_failures():
    F = np.array([[1.0, 4.0], [2.0, 2.0], [3.0, 3.0], [0.0, 0.0], [0.5, 0.5], [np.inf, np.inf]])
    cv = np.array([0.0, 0.0, 0.0, 2.0, 1.0, np.inf])
    order, rank, _ = survival_order(F, cv)
    assert rank[:3].tolist() == [0, 0, 1]  # (3,3) is dominated by (2,2)
    assert order.tolist() == [0, 1, 2, 4, 3, 5]


@pytest.mark.parametrize("seed", range(6))
def test_survival_of_the_first_keep_rows_needs_only_their_fronts(seed):
    """`survival_order(..., keep=k)` (fronts peeled only until k rows are ranked) keeps the same k rows, in the
    same order, with the same rank and crowding as the full order: ties, duplicates, infeasible and failed
    rows included."""
    rng = np.random.default_rng(seed)
    n, k = 200, 100
    F = rng.integers(0, 12, (n, 3)).astype(float)  # many ties and duplicate rows
    cv = np.where(rng.random(n) < [0.1, 0.5, 0.7, 0.9, 0.95, 0.99][seed], 0.0, rng.random(n))
    F[rng.random(n) < 0.05] = np.inf
    full, rank, crowd = survival_order(F, cv)
    part, rank_k, crowd_k = survival_order(F, cv, keep=k)
    assert part[:k].tolist() == full[:k].tolist()
    assert np.array_equal(rank_k[part[:k]], rank[full[:k]]) and np.array_equal(crowd_k[part[:k]], crowd[full[:k]])


def test_a_generation_has_the_population_size_and_valid_values():
    space = SearchSpace(SearchSpaceSpec(**SPACE))
    ga = ArrayNSGAII(space, population_size=10)
    rng = np.random.default_rng(1)
    X, _ = ga.ask(rng, 10)
    F = rng.random((10, 2))
    ga.observe(X, F, np.zeros(10))
    X2, cols2 = ga.ask(rng, 10)
    assert X2.shape == (10, ga.codec.width) and len(ga.X) == 10
    assert set(cols2["chip.process_node"].tolist()) <= {"n7", "n5"}


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_a_design_evaluates_alike_in_any_batch(n):
    """Batches without a `chip.precisions` column: the default precision list is not one name per row (a
    batch of exactly as many designs as default precisions gave each design a single precision)."""
    tech = default_technology()
    rng = np.random.default_rng(n)
    cols = {"chip.cores": rng.integers(8, 128, n), "chip.memory": np.array(["hbm3"] * n),
            "chip.memory_stacks": np.full(n, 2), "system.num_chips": np.ones(n, dtype=np.int64)}
    together = evaluate(DesignArrays.from_columns(cols, tech), "local", tech)
    for i in range(n):
        one = evaluate(DesignArrays.from_columns({k: v[i:i + 1] for k, v in cols.items()}, tech), "local", tech)
        assert one["peak_tflops_bf16"][0] == together["peak_tflops_bf16"][i] > 0
        assert one["local_llm.tpot_ms"][0] == pytest.approx(together["local_llm.tpot_ms"][i], rel=1e-9)


class Flaky(ModelEvaluator):
    """The model, raising on every third batch (its trials fail) and with NaN throughput on some designs."""

    calls = 0

    def __call__(self, columns):
        Flaky.calls += 1
        if Flaky.calls % 3 == 0:
            raise RuntimeError("boom")
        out = super().__call__(columns)
        out["local_llm.tpot_ms"] = np.where(np.asarray(columns["chip.cores"]) % 7 == 0, np.nan,
                                            out["local_llm.tpot_ms"])
        return out


def test_the_sampler_sees_the_objectives_its_parts_store(tmp_path, monkeypatch):
    """The live run hands the sampler the batch's objective matrix as scored; a replay reads it from the part:
    the two are equal (failed trials, non-finite metrics and expression objectives included)."""
    from dse.runs.colpart import encode_columns, frame_of, read_columns
    from dse.runs.columns import without_internal
    from dse.runs.front import objective_matrix

    seen = []
    orig = StudyRunner._array_batch

    def spy(self, *a, **k):
        data, Y, fitness, records = orig(self, *a, **k)
        df = read_columns(encode_columns(data))  # the part as read back
        assert df.equals(frame_of([data]))  # ... and as finalize gets it (with the internal columns)
        assert without_internal(df).columns == [c for c in data if not c.startswith("_")]
        try:
            stored = objective_matrix(df, self.objectives)
        except KeyError:  # every trial of the batch failed: no metric columns; a replay reads zeros (`_fitness`)
            stored = np.zeros((df.height, len(self.objectives)))
        seen.append((stored, Y))
        # what the journal gets is what a resume rebuilds from the part's columns
        assert self._record_texts([records]) == self.stored_records(df)
        F, cv = self._fitness(df)  # what a replay feeds the sampler, read from the part
        assert np.array_equal(F, fitness[0]) and np.array_equal(cv, fitness[1])
        return data, Y, fitness, records

    monkeypatch.setattr(StudyRunner, "_array_batch", spy)
    cfg = _study(tmp_path, objectives=[{"metric": "local_llm.tpot_ms", "direction": "minimize"},
                                       {"metric": "chip_cost_usd / local_llm.tokens_per_s", "direction": "minimize"}])
    Flaky.calls = 0
    StudyRunner(load_study(cfg), tmp_path / "r", evaluator=Flaky("local")).run()
    df = _results(tmp_path / "r")
    assert (df["state"] == "FAIL").any() and (df["state"] == "COMPLETE").any()
    assert len(seen) == 8 and all(np.array_equal(a, b) for a, b in seen)


@pytest.mark.parametrize("col, neutral", [
    (np.array([3, 4, 5]), 0), (np.array([3, 4, 5]), 0.5), (np.array([1.5, 2.5, 3.5]), 1.0),
    (np.array([1.5, 2.5, 3.5]), 1), (np.array(["hbm3", "hbm3e", "none"]), "hbm3e_long"),
    (np.array([True, False, True]), False), (np.array(["a", "b", "c"]), 4)])
def test_neutral_fill_types_values_as_the_element_wise_fill(col, neutral):
    """An inactive knob's neutral value goes in with one `np.where` when it is of the column's kind; the values
    and their kind are those of the element-by-element fill (`_as_array` of the values), else it is that fill."""
    from dse.study.samplers import _with_neutral
    from dse.study.space import _as_array

    off = np.array([False, True, True])
    got = _with_neutral(col, off, neutral)
    want = _as_array([neutral if o else v for o, v in zip(off.tolist(), col.tolist())])
    assert got.dtype.kind == want.dtype.kind and got.tolist() == want.tolist()
    assert [type(x) for x in got.tolist()] == [type(x) for x in want.tolist()]


def _datacenter_space() -> SearchSpace:
    import yaml

    root = Path(__file__).resolve().parents[1]
    return SearchSpace(SearchSpaceSpec(**yaml.safe_load((root / "search_spaces" / "datacenter.yaml").read_text())))


def test_sbx_children_are_designs_of_the_space_and_identical_parents_breed_true():
    """SBX + polynomial mutation: every child is on its knob's grid and within bounds (ints whole, steps on the
    step grid, log ranges inside), and without mutation two copies of a design only breed that design."""
    space = _datacenter_space()
    ga = ArrayNSGAII(space, population_size=50, crossover="sbx")
    codec = ga.codec
    rng = np.random.default_rng(7)
    X, _ = codec.canonical(codec.random(rng, 50), rng)
    ga.observe(X, rng.random((50, 3)), np.zeros(50))
    for seed in range(5):
        C, cols = ga.ask(np.random.default_rng(seed), 200)
        assert np.array_equal(codec.encode(cols), C, equal_nan=True)  # the columns are the matrix's designs
        for j, k in enumerate(codec.knobs):
            x = C[:, j][~np.isnan(C[:, j])]
            if k.kind == "categorical":
                assert set(x.astype(int).tolist()) <= set(range(len(k.dist.choices)))
                continue
            assert (x >= k.dist.low).all() and (x <= k.dist.high).all(), k.name
            if k.kind == "int":
                assert (x == np.rint(x)).all(), k.name
            if k.dist.step is not None:
                steps = (x - k.dist.low) / k.dist.step
                assert np.allclose(steps, np.rint(steps)), k.name
    same = ArrayNSGAII(space, population_size=4, crossover="sbx", mutation_prob=0.0)
    one = np.repeat(X[:1], 4, axis=0)
    same.observe(one, np.zeros((4, 3)), np.zeros(4))
    C, _ = same.ask(np.random.default_rng(1), 30)
    assert np.array_equal(C, np.repeat(X[:1], 30, axis=0), equal_nan=True)


def test_sbx_children_lie_around_their_parents_on_the_knobs_scale():
    """Between two parents a child of SBX is near one of them on the knob's scale (log for log ranges): with
    parents at the two ends of `chip.sram_mb`'s log range (16 and 1024 MB), children fall mostly near either
    end, few in the geometric middle; polynomial mutation alone moves a child a little."""
    space = _datacenter_space()
    ga = ArrayNSGAII(space, population_size=2, crossover="sbx", mutation_prob=0.0, crossover_prob=1.0,
                     swapping_prob=1.0)
    codec = ga.codec
    rng = np.random.default_rng(3)
    X, _ = codec.canonical(codec.random(rng, 2), rng)
    j = codec.names.index("chip.sram_mb")
    X[:, j] = [16.0, 1024.0]
    ga.observe(X, np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), np.zeros(2))  # both on the front
    C, _ = ga.ask(np.random.default_rng(4), 4000)
    logs = np.log(C[:, j])
    mid = np.log(128.0)  # the geometric middle of 16 and 1024
    near_ends = (np.abs(logs - np.log(16.0)) < 0.5) | (np.abs(logs - np.log(1024.0)) < 0.5)
    assert near_ends.mean() > 0.5 and (np.abs(logs - mid) < 0.5).mean() < 0.15
    assert np.isclose(np.mean(logs), mid, atol=0.15)  # symmetric around the parents' mean
    mut = ArrayNSGAII(space, population_size=1, crossover="sbx", mutation_prob=1.0, crossover_prob=0.0)
    mut.observe(X[:1].copy(), np.zeros((1, 3)), np.zeros(1))
    M, _ = mut.ask(np.random.default_rng(5), 2000)
    step = np.abs(np.log(M[:, j]) - np.log(16.0)) / (np.log(1024.0) - np.log(16.0))
    assert np.median(step) < 0.05 and step.max() <= 1.0


def test_an_unknown_array_crossover_is_refused():
    with pytest.raises(ValueError, match="crossover"):
        ArrayNSGAII(SearchSpace(SearchSpaceSpec(**SPACE)), population_size=4, crossover="blxalpha")
