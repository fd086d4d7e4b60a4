"""`dse schema KIND`: every YAML input kind has a JSON Schema, the committed `schemas/` files equal what
the registry derives, every shipped YAML file names its schema on line 1 and validates against it, and
a schema rejects what dse rejects."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from dse.model.technology import default_technology
from dse.schemas import SCHEMA_KINDS, json_schema, schema_file_name

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [(kind.name, path) for kind in SCHEMA_KINDS.values() for pat in kind.files for path in sorted(ROOT.glob(pat))]


def _validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((ROOT / "schemas" / schema_file_name(kind)).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("kind", sorted(SCHEMA_KINDS))
def test_committed_schema_equals_the_registry(kind):
    committed = json.loads((ROOT / "schemas" / schema_file_name(kind)).read_text())
    assert committed == json_schema(kind, default_technology()), \
        f"schemas/{schema_file_name(kind)} is stale: run `dse schema all --out schemas`"


def test_every_kind_ships_files_or_is_documented():
    kinds_with_files = {k for k, _ in SHIPPED}
    assert {"study", "search-space", "mix", "dashboard", "technology", "measurements"} <= kinds_with_files


@pytest.mark.parametrize("kind,path", SHIPPED, ids=[str(p.relative_to(ROOT)) for _, p in SHIPPED])
def test_shipped_yaml_names_and_passes_its_schema(kind, path):
    first = path.read_text().splitlines()[0]
    rel = os.path.relpath(ROOT / "schemas" / schema_file_name(kind), path.parent)
    assert first == f"# yaml-language-server: $schema={rel}"
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in _validator(kind).iter_errors(yaml.safe_load(path.read_text()))]
    assert not errors, errors


def test_schema_rejects_what_dse_rejects():
    study = yaml.safe_load((ROOT / "studies" / "quickstart.yaml").read_text())
    bad = copy.deepcopy(study) | {"objectivs": []}
    assert not _validator("study").is_valid(bad)
    space = yaml.safe_load((ROOT / "search_spaces" / "full.yaml").read_text())
    bad = copy.deepcopy(space)
    bad["params"]["chip.sram_mbb"] = {"low": 1, "high": 2}
    errors = list(_validator("search-space").iter_errors(bad))
    assert any("chip.sram_mbb" in e.message for e in errors)
    tech = {"process_nodes": {"n5": {"wafer_price_usd": "cheap"}}}
    assert not _validator("technology").is_valid(tech)
    assert _validator("technology").is_valid({"process_nodes": {"n5": {"wafer_price_usd": {"low": 15000, "high": 18000}}}})
    design = {"chip": {"node": "n5", "sram_mb": -1}}
    assert not _validator("design").is_valid(design)


def _dse(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dse", *args], capture_output=True, text=True, timeout=120)


def test_cli_schema_writes_and_refuses(tmp_path):
    assert _dse("schema", "all", "--out", str(tmp_path / "s")).returncode == 0
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted(schema_file_name(k) for k in SCHEMA_KINDS)
    typo = _dse("schema", "studdy")
    assert typo.returncode == 2 and "study" in typo.stderr and "Traceback" not in typo.stderr
    assert _dse("schema", "all").returncode == 2
    printed = _dse("schema", "mix")
    assert json.loads(printed.stdout) == json_schema("mix", default_technology())
