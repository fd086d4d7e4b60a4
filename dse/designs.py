"""Resolve what a user names as a design: a catalog chip name, a design YAML file, or one design of a
multi-design YAML file written by `dse export` (`FILE.yaml#NAME`)."""

from __future__ import annotations

from pathlib import Path

from dse.catalog import list_catalog, load_catalog_design
from dse.config import parse_yaml_documents, suggest, validate_data
from dse.errors import DseUserError
from dse.model.hardware import Design


def _split_selector(spec: str) -> tuple[Path, str | None]:
    if "#" in spec:
        file, _, name = spec.rpartition("#")
        if file.lower().endswith((".yaml", ".yml", ".json")):
            return Path(file), name
    return Path(spec), None


def _load_file(path: Path, name: str | None):
    """The design in `path`, or design `name` of a multi-document file; read/parse errors (a folder, not
    UTF-8, malformed, alias bombs, non-finite or huge numbers) are ConfigErrors naming the file."""

    docs = parse_yaml_documents(path)
    if not docs or all(d is None for d, _ in docs):
        raise DseUserError(f"{path}: empty file (no design in it); a design names at least its chip, e.g. "
                           "`chip: {cores: 16, memory: hbm3}` (see `dse schema design`)")
    if len(docs) <= 1 and name is None:
        data, positions = docs[0]
        return validate_data(data, Design, where=str(path), positions=positions, what="design")
    names = [str(d.get("name", "")) if isinstance(d, dict) else "" for d, _ in docs]
    if name is None:
        raise DseUserError(f"{path}: holds {len(docs)} designs ({', '.join(n or '?' for n in names)}); "
                           f"pick one as {path}#NAME, or export with --out FOLDER/ for one file each")
    if name not in names:

        raise DseUserError(f"{path}: " + suggest(name, [n for n in names if n], what="design in this file"))
    data, positions = docs[names.index(name)]
    return validate_data(data, Design, where=f"{path}#{name}", positions=positions, what="design")


def load_design(spec: str):
    """A `Design` from a catalog name (e.g. `H100-SXM`), a YAML file, or `FILE.yaml#NAME` for one design
    of a file holding several; errors are DseUserError (exit status 2)."""

    if not spec.strip():
        raise DseUserError("design: empty name; give a catalog name (see `dse catalog`) or a design YAML file")
    path, name = _split_selector(spec)
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.exists():
        if not path.exists():
            raise DseUserError(f"{path}: file not found")
        return _load_file(path, name)

    try:
        return load_catalog_design(spec)
    except DseUserError:
        raise
    except KeyError:

        raise DseUserError(suggest(spec, list_catalog(), what="design (catalog name or YAML file)")) from None
