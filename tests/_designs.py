"""Random designs for the property tests: one generator, derived from `search_spaces/full.yaml` (every design
knob a search may vary, drawn by `dse.study.samplers.sample_space`), so no test writes its own list of knobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dse.study.samplers import sample_space
from dse.study.space import SearchSpace, SearchSpaceSpec, check_space, load_space

FULL_SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "full.yaml"


def random_designs(n: int, seed: int | np.random.Generator, pin: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """`n` random designs of the full space as knob columns. `pin` narrows the space to a scenario: a knob
    mapped to a param spec (`{"choices": [...]}`, `{"low": .., "high": ..}`) is drawn from that instead, a
    knob mapped to a plain value is fixed to it."""
    space = load_space(FULL_SPACE)
    if pin:
        spec = space.spec.model_dump(exclude_none=True)
        params = {k: v for k, v in spec["params"].items() if k not in pin or isinstance(pin[k], dict)}
        params.update({k: v for k, v in pin.items() if isinstance(v, dict)})
        fixed = {**spec["fixed"], **{k: v for k, v in pin.items() if not isinstance(v, dict)}}
        spec = SearchSpaceSpec.model_validate({**spec, "params": params, "fixed": fixed})
        problems = check_space(spec, "pinned full space", {})
        assert not problems, problems
        space = SearchSpace(spec)
    return sample_space(space, n, np.random.default_rng(seed))
