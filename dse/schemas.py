"""JSON Schemas of every YAML input kind, derived from the pydantic models and the knob registry.

`dse schema KIND` prints one; `schemas/*.schema.json` holds them for editors (shipped YAML files
name theirs in a `# yaml-language-server: $schema=...` first line), and a test keeps both equal.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

DRAFT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class SchemaKind:
    """One input file kind: what it is, where such files live, how its schema is built."""

    name: str
    description: str
    build: Callable[[Any], dict[str, Any]]
    files: tuple[str, ...] = ()  # repository glob patterns of the shipped YAML files of this kind


def _pydantic(cls_path: str) -> Callable[[Any], dict[str, Any]]:
    def build(tech: Any) -> dict[str, Any]:
        import importlib

        module, _, name = cls_path.partition(":")
        return getattr(importlib.import_module(module), name).model_json_schema()
    return build


def _optional_everywhere(schema: Any) -> Any:
    """The same schema with no `required` lists: an override file may give any subset of fields."""
    if isinstance(schema, dict):
        return {k: _optional_everywhere(v) for k, v in schema.items() if k != "required"}
    if isinstance(schema, list):
        return [_optional_everywhere(v) for v in schema]
    return schema


def _design(tech: Any) -> dict[str, Any]:
    from dse.model.knobs import design_json_schema

    return design_json_schema(tech)


def _knob_names_for(params_schema: dict[str, Any], tech: Any) -> dict[str, Any]:
    from dse.model.knobs import KNOBS

    out = copy.deepcopy(params_schema)
    out["propertyNames"] = {"enum": [k.name for k in KNOBS]}
    return out


def _search_space(tech: Any) -> dict[str, Any]:
    from dse.study.space import SearchSpaceSpec

    s = SearchSpaceSpec.model_json_schema()
    props = s["properties"]
    props["params"] = _knob_names_for(props["params"], tech)
    props["fixed"] = _knob_names_for(props["fixed"], tech)
    return s


def _study(tech: Any) -> dict[str, Any]:
    from dse.study.spec import StudySpec

    return StudySpec.model_json_schema()


def _number_or_range(schema: Any) -> Any:
    """Every number may also be an uncertain range (`{value, low, high, ...}`, see dse/model/ranges.py)."""
    if isinstance(schema, dict):
        if schema.get("type") == "number":
            return {"anyOf": [schema, {"$ref": "#/$defs/Distribution"}]}
        return {k: _number_or_range(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_number_or_range(v) for v in schema]
    return schema


def _technology(tech: Any) -> dict[str, Any]:
    from dse.model.ranges import Distribution
    from dse.model.technology import Technology

    s = _number_or_range(_optional_everywhere(Technology.model_json_schema()))
    s.setdefault("$defs", {})["Distribution"] = Distribution.model_json_schema()
    s["description"] = ("A technology override file (`--tech`, a study's `technology:`): any subset of the "
                        "packaged dse/model/data/technology.yaml, deep-merged over it.")
    return s


SCHEMA_KINDS: dict[str, SchemaKind] = {k.name: k for k in (
    SchemaKind("design", "One chip type × a system (what `dse export` writes and `dse evaluate` reads).", _design),
    SchemaKind("study", "A study: search space, mix, objectives, constraints, sampler, budget.", _study,
               ("studies/*.yaml",)),
    SchemaKind("search-space", "A search space: ranges and choices over design knobs.", _search_space,
               ("search_spaces/*.yaml",)),
    SchemaKind("mix", "A weighted mix of scenarios.", _pydantic("dse.workloads.scenarios:Mix"), ("studies/mixes/*.yaml",)),
    SchemaKind("scenario", "One workload scenario: model, phases, batch, lengths, precision, SLOs.",
               _pydantic("dse.workloads.scenarios:Scenario")),
    SchemaKind("model", "A model shape (transformer or CNN layers) as data.", _pydantic("dse.workloads.shapes:ModelShape")),
    SchemaKind("serving", "A request-level serving workload: arrivals, length distributions, SLO percentiles.",
               _pydantic("dse.workloads.serving:ServingWorkload")),
    SchemaKind("dashboard", "A dashboard spec: views and their options.", _pydantic("dse.report.spec:DashboardSpec"),
               ("dashboards/*.yaml",)),
    SchemaKind("technology", "A technology override: process nodes, memories, links, packaging, prices.", _technology,
               ("dse/model/data/technology.yaml",)),
    SchemaKind("measurements", "Published measurements for `dse validate`.",
               _pydantic("dse.validate.measurements:MeasurementFile"), ("dse/catalog/measurements.yaml",)),
    SchemaKind("serving-measurements", "Published serving measurements for the `serving` regime of `dse validate`.",
               _pydantic("dse.validate.serving:ServingFile"), ("dse/validate/serving_measurements.yaml",)),
)}


def json_schema(kind: str, tech: Any) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of input kind `kind`; technology names come from `tech`."""
    k = SCHEMA_KINDS[kind]
    s = k.build(tech)
    return {"$schema": DRAFT, "$id": f"{kind}.schema.json", "title": s.get("title", f"dse {kind}"),
            "description": s.get("description") or k.description, **{key: v for key, v in s.items()
                                                                      if key not in ("$schema", "title", "description")}}


def schema_file_name(kind: str) -> str:
    """File name of a kind's schema under `schemas/`."""
    return f"{kind}.schema.json"


__all__ = ["SchemaKind", "SCHEMA_KINDS", "json_schema", "schema_file_name"]
