"""Resolve what a user names as a design: a catalog chip name, a design YAML file, or one design of a
multi-design YAML file written by `dse export` (`FILE.yaml#NAME`)."""

from __future__ import annotations

from pathlib import Path


def _split_selector(spec: str) -> tuple[Path, str | None]:
    if "#" in spec:
        file, _, name = spec.rpartition("#")
        if file.lower().endswith((".yaml", ".yml", ".json")):
            return Path(file), name
    return Path(spec), None


def _multi_document(path: Path, name: str | None):
    """The design `name` of a multi-document YAML file, or None when the file holds one document."""
    import yaml

    from dse.config import load_yaml_model
    from dse.errors import DseUserError
    from dse.model.hardware import Design

    try:
        docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except yaml.YAMLError:
        return None  # a malformed file: the single-document loader reports it with its position
    if len(docs) <= 1 and name is None:
        return None
    names = [str(d.get("name", "")) if isinstance(d, dict) else "" for d in docs]
    if name is None:
        raise DseUserError(f"{path}: holds {len(docs)} designs ({', '.join(n or '?' for n in names)}); "
                           f"pick one as {path}#NAME, or export with --out FOLDER/ for one file each")
    if name not in names:
        from dse.config import suggest

        raise DseUserError(f"{path}: " + suggest(name, [n for n in names if n], what="design in this file"))
    return load_yaml_model(f"{path}#{name}", Design, data=docs[names.index(name)], what="design")


def load_design(spec: str):
    """A `Design` from a catalog name (e.g. `H100-SXM`), a YAML file, or `FILE.yaml#NAME` for one design
    of a file holding several; errors are DseUserError (exit status 2)."""
    from dse.config import load_yaml_model
    from dse.errors import DseUserError
    from dse.model.hardware import Design

    path, name = _split_selector(spec)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists():
        if not path.exists():
            raise DseUserError(f"{path}: file not found")
        picked = _multi_document(path, name)
        if picked is not None:
            return picked
        return load_yaml_model(path, Design, what="design")
    from dse.catalog import list_catalog, load_catalog_design

    try:
        return load_catalog_design(spec)
    except DseUserError:
        raise
    except KeyError:
        from dse.config import suggest

        raise DseUserError(suggest(spec, list_catalog(), what="design (catalog name or YAML file)")) from None
