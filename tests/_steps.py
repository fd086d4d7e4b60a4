"""Operator tables shared by the step-time equivalence tests: every step of the extended mix's plans."""

from __future__ import annotations


def extended_mix_tables(num_chips) -> tuple:
    """The compressed operator table of every step of every plan of the `extended` mix for designs with
    `num_chips` chips (one entry per distinct table, in plan order)."""
    from dse.evaluate.mapping import compress_ops
    from dse.evaluate.steps import cnn_plan_table, llm_plan_table
    from dse.workloads.modelfile import load_model_shape
    from dse.workloads.scenarios import load_mix

    tables = []
    for e in load_mix("extended").scenarios:
        sc = e.scenario
        shape = load_model_shape(sc.model)
        t = (cnn_plan_table(sc, shape, sc.precision_spec()) if sc.kind == "cnn"
             else llm_plan_table(sc, shape, sc.precision_spec(), num_chips))
        tables += [compress_ops(s.ops) for s in t.steps]
    return tuple({id(t): t for t in tables}.values())
