"""The serving measurements file has a registered JSON Schema (`dse schema serving-measurements`) that
rejects what dse.validate.serving rejects: a misspelt row field, an unknown kind, a missing length."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from dse.schemas import SCHEMA_KINDS, schema_file_name
from dse.validate.serving import SERVING_FILE, ServingFile

ROOT = Path(__file__).resolve().parents[1]


def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        json.loads((ROOT / "schemas" / schema_file_name("serving-measurements")).read_text()))


def test_registered_for_the_shipped_file():
    assert "dse/validate/serving_measurements.yaml" in SCHEMA_KINDS["serving-measurements"].files
    assert SERVING_FILE.read_text().splitlines()[0].endswith("schemas/serving-measurements.schema.json")


@pytest.mark.parametrize("edit", [
    lambda row: row.update(valeu=row.pop("value")),                  # misspelt field
    lambda row: row.update(kind="batch"),                             # unknown kind
    lambda row: row.pop("prompt_tokens"),                             # missing length distribution
    lambda row: row.update(prompt_tokens={"kind": "fixed", "tokens": 0}),  # length below 1
])
def test_schema_and_pydantic_both_reject(edit):
    data = yaml.safe_load(SERVING_FILE.read_text())
    assert _validator().is_valid(data)
    bad = copy.deepcopy(data)
    edit(bad["measurements"][0])
    assert not _validator().is_valid(bad)
    with pytest.raises(ValidationError):
        ServingFile.model_validate(bad)
