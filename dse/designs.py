"""Resolve what a user names as a design: a catalog chip name or a design YAML file."""

from __future__ import annotations

from pathlib import Path


def load_design(spec: str):
    """A `Design` from a catalog name (e.g. `H100-SXM`) or a YAML file path; errors are DseUserError."""
    from dse.config import load_yaml_model
    from dse.errors import DseUserError
    from dse.model.hardware import Design

    path = Path(spec)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists():
        if not path.exists():
            raise DseUserError(f"{spec}: no such file")
        return load_yaml_model(path, Design, what="design")
    from dse.catalog import list_catalog, load_catalog_design

    try:
        return load_catalog_design(spec)
    except DseUserError:
        raise
    except KeyError:
        from dse.config import suggest

        raise DseUserError(suggest(spec, list_catalog(), what="design (catalog name or YAML file)")) from None
