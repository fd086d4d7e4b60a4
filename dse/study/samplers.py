"""Optuna samplers for a study spec, reseeded per batch so that a resumed run continues identically.

`BatchNSGAIISampler`/`BatchNSGAIIISampler` are Optuna's NSGA-II/III with the per-ask O(n) scans
removed: the runner tells them the generation of the batch it is asking (one batch = one
generation), parent populations are memoised in-process, and the incremental intersection search
space is carried from batch to batch. They keep Optuna's attribute keys
(`NSGAIISampler:generation`, ...) so studies stay readable by plain Optuna and optuna-dashboard.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from optuna.samplers import NSGAIIISampler, NSGAIISampler

from dse.errors import DseUserError


class _BatchGA:
    """Mixin: generation set by the runner; parent populations cached per generation."""

    _batch_generation: int | None = None
    _parent_memo: dict[int, list] | None = None
    _study_storage: Any = None
    _run_study_id: int | None = None

    def set_generation(self, generation: int, memo: dict[int, list], search_space: Any = None, *,
                       storage: Any = None, study_id: int | None = None) -> None:
        """Ask the next trials as `generation`; share the parent memo and the incremental
        intersection search space with the previous batches' samplers (no rescans of all trials).
        `storage`/`study_id`: the runner's own in-memory storage, where the generation is recorded."""
        self._batch_generation = generation
        self._parent_memo = memo
        self._study_storage, self._run_study_id = storage, study_id
        if search_space is not None:
            self._search_space = search_space

    def get_trial_generation(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> int:
        gen = trial.system_attrs.get(self._get_generation_key(), None)
        if gen is not None:
            return gen
        if self._batch_generation is None or self._study_storage is None:
            return super().get_trial_generation(study, trial)  # type: ignore[misc]
        st = self._study_storage
        st.set_trial_system_attr(st.get_trial_id_from_study_id_trial_number(self._run_study_id, trial.number),
                                 self._get_generation_key(), self._batch_generation)
        return self._batch_generation

    def get_parent_population(self, study: optuna.Study, generation: int) -> list:
        memo = self._parent_memo
        if memo is not None and generation in memo:
            return memo[generation]
        # trial order, as Optuna returns it from its cache: the same whether computed now or replayed
        parents = sorted(super().get_parent_population(study, generation), key=lambda t: t.number)  # type: ignore[misc]
        if memo is not None:
            memo[generation] = parents
        return parents


class BatchNSGAIISampler(_BatchGA, NSGAIISampler):
    pass


class BatchNSGAIIISampler(_BatchGA, NSGAIIISampler):
    pass


# keep Optuna's own attribute names (the subclasses would otherwise get their own)
for _cls, _base in ((BatchNSGAIISampler, NSGAIISampler), (BatchNSGAIIISampler, NSGAIIISampler)):
    _cls._GENERATION_KEY = _base._GENERATION_KEY
    _cls._PARENT_CACHE_KEY_PREFIX = _base._PARENT_CACHE_KEY_PREFIX


def batch_seed(seed: int, batch: int) -> int:
    """Deterministic per-batch seed (independent streams for every batch of every study seed)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(batch)]).generate_state(1)[0])


def _crossover(name: str) -> Any:
    from optuna.samplers import nsgaii

    return {"uniform": nsgaii.UniformCrossover, "blxalpha": nsgaii.BLXAlphaCrossover, "sbx": nsgaii.SBXCrossover,
            "vsbx": nsgaii.VSBXCrossover, "undx": nsgaii.UNDXCrossover, "spx": nsgaii.SPXCrossover}[name]()


def make_sampler(cfg: Any, seed: int) -> optuna.samplers.BaseSampler:
    """Sampler for a spec's `sampler` block with a given seed."""
    kind = cfg.kind
    if kind == "nsga2":
        kw: dict[str, Any] = {}
        if cfg.crossover != "uniform":
            kw["crossover"] = _crossover(cfg.crossover)
        return BatchNSGAIISampler(population_size=cfg.population_size, mutation_prob=cfg.mutation_prob,
                                  crossover_prob=cfg.crossover_prob, swapping_prob=cfg.swapping_prob, seed=seed, **kw)
    if kind == "nsga3":
        return BatchNSGAIIISampler(population_size=cfg.population_size, dividing_parameter=cfg.dividing_parameter,
                                   mutation_prob=cfg.mutation_prob, crossover_prob=cfg.crossover_prob,
                                   swapping_prob=cfg.swapping_prob, seed=seed)
    if kind == "tpe":
        return optuna.samplers.TPESampler(n_startup_trials=cfg.n_startup_trials, multivariate=cfg.multivariate,
                                          constant_liar=cfg.constant_liar, seed=seed)
    if kind == "gp":
        try:
            import torch  # noqa: F401
        except ImportError:
            raise DseUserError("sampler kind 'gp' needs PyTorch: pip install torch (or use nsga2/tpe)") from None
        return optuna.samplers.GPSampler(n_startup_trials=cfg.n_startup_trials, seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "qmc":
        return optuna.samplers.QMCSampler(qmc_type=cfg.qmc_type, scramble=cfg.scramble, seed=seed,
                                          warn_independent_sampling=False)
    raise DseUserError(f"sampler kind {kind!r} does not use Optuna")
