"""Plans: how a scenario runs on a system, and their design-independent enumeration.

A `Plan` is one way to serve a scenario: tensor / pipeline / expert parallelism, the micro-batch
and how many micro-batches are in flight, and the data-parallel replicas. Enumeration needs only
the scenario, the model shape and the system sizes present; evaluating plans on designs and picking
the best one per design live in `dse.evaluate.mapping`. A new parallelism or serving strategy is a
new generator here plus its time function there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TP_CHOICES = (1, 2, 4, 8, 16, 32, 64)
EP_CHOICES = (2, 4, 8, 16, 32, 64)
PP_CHOICES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def powers_of_two(top: int) -> list[int]:
    """1, 2, 4, ... up to `top` (inclusive): the batch ladder. It has no fixed ceiling, so a larger
    allowed batch always adds rungs and never takes one away (no cliff at a hard-coded batch)."""
    return [1 << k for k in range(max(int(top), 1).bit_length())]


def knot_ladder(top: int) -> list[int]:
    """1, 2, 4, ... up to the first power of two >= `top`: the knots of a batch range. A batch between
    two knots (the scenario's max, the largest batch a design's memory holds, the largest meeting its
    SLOs) is timed on the chord between them, so the knots, hence every batch's time, do not depend on
    the max: a larger max or more memory only lets a design go further along the same curve."""
    top = max(int(top), 1)
    return [1 << k for k in range((top - 1).bit_length() + 1)]


@dataclass(frozen=True)
class Plan:
    """One way to run a scenario. A replica is tp × ep × pp chips holding `micro_batches` micro-batches
    of `micro_batch` sequences (LLM) or images (CNN) in flight; `dp` replicas serve side by side.
    In an enumerated plan `dp` is 0: as many replicas as each design's chips allow."""

    tp: int = 1
    pp: int = 1
    ep: int = 1
    micro_batch: int = 1
    micro_batches: int = 1
    dp: int = 0
    # room for serving strategies: prefill/decode pools (chips per pool) and speculative decoding
    # (draft tokens per step) extend this record; today's plans use one pool and no draft model

    @property
    def batch(self) -> int:
        """Sequences (or images) one replica serves at a time."""
        return self.micro_batch * self.micro_batches

    @property
    def replica_chips(self) -> int:
        return self.tp * self.ep * self.pp

    def label(self) -> str:
        """`tp2 pp1 dp4 batch 128` (ep shown only when > 1)."""
        ep = f" ep{self.ep}" if self.ep > 1 else ""
        return f"tp{self.tp} pp{self.pp}{ep} dp{self.dp} batch {self.batch}"


@dataclass(frozen=True)
class Rung:
    """Plans sharing (tp, ep, micro-batch), hence the same operator tables; they differ in pipeline depth."""

    tp: int
    ep: int
    micro_batch: int
    plans: tuple[Plan, ...]


@dataclass(frozen=True)
class Ladder:
    """The rungs of one (tp, ep) group by growing micro-batch. With `prune`, a design that has no plan
    fitting and meeting the SLOs on a rung skips the later ones: time and footprint never shrink as
    the micro-batch grows (a fixed batch keeps its footprint, so it is not pruned)."""

    tp: int
    ep: int
    rungs: tuple[Rung, ...]
    prune: bool


def scenario_batch(scenario) -> tuple[int | None, int]:
    """(fixed batch or None, maximum batch) of a scenario's batch policy."""
    b = scenario.batch
    if isinstance(b, int):
        return b, b
    # a pydantic policy: its fields only (asking a model for an attribute it lacks costs ~40 µs)
    fixed = vars(b).get("fixed") if hasattr(type(b), "model_fields") else getattr(b, "fixed", None)
    if fixed:
        return int(fixed), int(fixed)
    return None, int(getattr(b, "max"))


def batch_candidates(scenario) -> list[int]:
    """Batch sizes timed: the fixed batch, or the knots of the range (`knot_ladder`; the last may exceed
    the max: it is only the upper end of the chord the max lies on)."""
    fixed, max_b = scenario_batch(scenario)
    if fixed is not None:
        return [fixed]
    return knot_ladder(max_b)


def micro_batch_candidates(scenario) -> list[int]:
    """Micro-batch sizes b to time for LLM decode (up to pp micro-batches of b sequences are in flight):
    with a fixed batch every power of two dividing it plus the batch itself (its one-micro-batch plan,
    pp 1); with a range the knots (`knot_ladder`), batches between them are chords."""
    fixed, max_b = scenario_batch(scenario)
    if fixed is None:
        return knot_ladder(max_b)
    return [b for b in powers_of_two(fixed) if fixed % b == 0] + ([fixed] if fixed & (fixed - 1) else [])


def pipeline_depths(layers: int, replica_chips: int, chip_counts) -> list[int]:
    """Pipeline depths to try over systems of `chip_counts` chips: powers of two, plus "every chip in one
    pipeline" for each system size present (e.g. 576 = 8 x 72), up to the layers and the largest system.
    A design tries the powers of two and only its own whole-system depth (`depth_tried`), so its plans
    do not depend on which other systems share the call."""
    whole = {int(c) // replica_chips for c in chip_counts}
    top = max(1, int(max(chip_counts)) // replica_chips)
    return sorted(pp for pp in set(PP_CHOICES) | whole if 1 <= pp <= top and pp <= layers)


def depth_tried(pp, replica_chips, chips):
    """Whether a design of `chips` chips tries pipeline depth `pp` with replicas of `replica_chips` chips
    per stage (arrays broadcast): every power of two of PP_CHOICES, and the depth that puts all its chips
    in one pipeline."""
    pp = np.asarray(pp)
    return np.isin(pp, PP_CHOICES) | (pp == np.asarray(chips) // np.asarray(replica_chips))


def llm_ladders(scenario, shape, chip_counts, force_tp: int | None = None,
                force_pp: int | None = None, force_ep: int | None = None) -> list[Ladder]:
    """Every candidate plan of an LLM serving scenario on systems of `chip_counts` chips (the distinct
    chips available per design), as ladders of (tp, ep) by growing micro-batch; static batching.

    mb ≤ pp micro-batches of b sequences are in flight: with a fixed batch B, mb = B / b (b must divide
    B). A range is a path per (tp, ep, pp) column: one sequence (b = 1, mb = 1), a full pipeline of
    single sequences (b = 1, mb = pp), then full pipelines of growing knot micro-batches (mb = pp), up to
    the first plan whose batch reaches the max (a knot only when it exceeds it); batches in between are
    chords (`dse.evaluate.mapping`). MoE models may spread their experts over ep chips.
    """
    top = int(max(chip_counts))
    tps = [force_tp] if force_tp else [c for c in TP_CHOICES if c <= min(top, max(TP_CHOICES))]
    eps = [force_ep] if force_ep else [1] + [e for e in EP_CHOICES if e <= getattr(shape, "experts", 1)]
    fixed, max_b = scenario_batch(scenario)
    ladders = []
    for tp, ep in [(tp, ep) for tp in tps for ep in eps if tp * ep <= max(top, 1)]:
        if tp > shape.heads or top < tp * ep:
            continue
        pps = [force_pp] if force_pp else pipeline_depths(shape.layers, tp * ep, chip_counts)
        rungs = []
        for b in micro_batch_candidates(scenario):
            plans = []
            for pp in pps:
                if fixed is not None:
                    if fixed % b or fixed // b > pp:
                        continue
                    mbs = [fixed // b]
                elif b == 1:
                    mbs = [1] if pp == 1 or max_b == 1 else [1, pp]
                elif b // 2 * pp >= max_b:
                    continue  # the column reached the max at an earlier knot
                else:
                    mbs = [pp]
                plans.extend(Plan(tp=tp, pp=pp, ep=ep, micro_batch=b, micro_batches=mb) for mb in mbs)
            rungs.append(Rung(tp, ep, b, tuple(plans)))
        ladders.append(Ladder(tp, ep, tuple(rungs), prune=fixed is None))
    return ladders


def cnn_plans(scenario) -> list[Plan]:
    """Candidate plans of a CNN scenario by growing batch: data parallel over every chip, one batch per step."""
    return [Plan(micro_batch=b) for b in batch_candidates(scenario)]
