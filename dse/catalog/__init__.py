"""Reference chips (A100, H100, ..., Groq, Cerebras, M2 Ultra) as dse designs with published figures.

Data: `dse/catalog/chips.yaml`. Each entry is a `Design` (chip + system) plus a `published:` block of
datasheet numbers and sources, used by tests and `dse validate`.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

from dse.config import parse_yaml, suggest, validate_data
from dse.errors import DseUserError
from dse.model.hardware import Design

CATALOG_FILE = Path(__file__).parent / "chips.yaml"


@functools.lru_cache(maxsize=1)
def _raw() -> tuple[dict, dict]:
    data, positions = parse_yaml(CATALOG_FILE)
    return data, positions


def list_catalog() -> list[str]:
    """Names of every catalog design, in file order."""
    return list(_raw()[0])


def _entry(name: str) -> dict:
    data = _raw()[0]
    if name not in data:
        raise DseUserError(suggest(name, data, "catalog design"))
    return data[name]


def load_catalog_design(name: str):
    """The catalog entry `name` as a validated `Design` (did-you-mean on unknown names)."""

    entry = copy.deepcopy(_entry(name))
    entry.pop("published", None)
    entry.setdefault("name", name)
    positions = {k[1:]: v for k, v in _raw()[1].items() if k[:1] == (name,)}
    return validate_data(entry, Design, where=f"{CATALOG_FILE}", positions=positions, what=f"catalog entry {name}")


def published(name: str) -> dict[str, Any]:
    """The published datasheet figures (and their sources) of catalog entry `name`."""
    return copy.deepcopy(_entry(name).get("published", {}))
