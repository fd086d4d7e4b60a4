"""Reference chips (A100, H100, ..., Groq, Cerebras, M2 Ultra) as dse designs with published figures.

Data: `dse/catalog/chips.yaml`. Each entry is a `Design` (chip + system) plus a `published:` block of
datasheet numbers and sources, used by tests and `dse validate`, and `aliases:` (other names a person
types, e.g. `h100`); names and aliases match case-insensitively.
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


CATALOG_ONLY_KEYS = ("published", "aliases")  # entry keys that are catalog metadata, not Design fields


@functools.lru_cache(maxsize=1)
def aliases() -> dict[str, str]:
    """Lower-cased name or alias → catalog name, from each entry's name and its `aliases:` list."""
    out: dict[str, str] = {}
    for name, entry in _raw()[0].items():
        for a in [name, *(entry.get("aliases") or [])]:
            other = out.setdefault(str(a).lower(), name)
            if other != name:
                raise DseUserError(f"{CATALOG_FILE}: alias {a!r} of {name} already names {other}")
    return out


def resolve_name(name: str) -> str | None:
    """The catalog name that `name` means (exact, case-insensitive, or an alias), or None."""
    return name if name in _raw()[0] else aliases().get(str(name).strip().lower())


def _entry(name: str) -> dict:
    data = _raw()[0]
    key = resolve_name(name)
    if key is None:
        raise DseUserError(suggest(name, data, "catalog design"))
    return data[key]


def load_catalog_design(name: str):
    """The catalog entry `name` (or an alias, any case) as a validated `Design` (did-you-mean on unknown names)."""

    entry = copy.deepcopy(_entry(name))
    name = resolve_name(name) or name
    for key in CATALOG_ONLY_KEYS:
        entry.pop(key, None)
    entry.setdefault("name", name)
    positions = {k[1:]: v for k, v in _raw()[1].items() if k[:1] == (name,)}
    return validate_data(entry, Design, where=f"{CATALOG_FILE}", positions=positions, what=f"catalog entry {name}")


def published(name: str) -> dict[str, Any]:
    """The published datasheet figures (and their sources) of catalog entry `name`."""
    return copy.deepcopy(_entry(name).get("published", {}))
