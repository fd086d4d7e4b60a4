"""dse.config: YAML positions, pydantic errors as file:line:col lines, did-you-mean suggestions."""

from __future__ import annotations

from typing import Annotated, Literal, Union

import pytest
from pydantic import BaseModel, ConfigDict, Field

from dse.config import load_yaml_model, suggest
from dse.errors import ConfigError, DseUserError


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sram_mb: float = Field(gt=0)
    cores: int = 1


class KindA(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["a"]
    alpha: int


class KindB(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["b"]
    beta: str


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    chip: Inner


class Tagged(BaseModel):
    model_config = ConfigDict(extra="forbid")
    things: list[Annotated[Union[KindA, KindB], Field(discriminator="kind")]] = []


def write(tmp_path, text: str):
    p = tmp_path / "in.yaml"
    p.write_text(text)
    return p


def test_valid_loads(tmp_path):
    p = write(tmp_path, "name: x\nchip:\n  sram_mb: 12\n")
    m = load_yaml_model(p, Outer)
    assert m.chip.sram_mb == 12 and m.name == "x"


def test_unknown_key_has_position_and_suggestion(tmp_path):
    p = write(tmp_path, "name: x\nchip:\n  sram_mb: 12\n  sram_mbb: 3\n")
    with pytest.raises(ConfigError) as ei:
        load_yaml_model(p, Outer)
    (line,) = ei.value.problems
    assert line.startswith(f"{p}:4:3: chip.sram_mbb: unknown field")
    assert "did you mean `sram_mb`?" in line
    assert "1 problem(s) in Outer" in str(ei.value)


def test_wrong_type_and_negative(tmp_path):
    p = write(tmp_path, "name: x\nchip:\n  sram_mb: -1\n  cores: lots\n")
    with pytest.raises(ConfigError) as ei:
        load_yaml_model(p, Outer)
    probs = ei.value.problems
    assert len(probs) == 2
    assert any(pr.startswith(f"{p}:3:12: chip.sram_mb:") and "greater than 0" in pr for pr in probs)
    assert any(pr.startswith(f"{p}:4:10: chip.cores:") and "'lots'" in pr for pr in probs)


def test_missing_field_reported_at_parent(tmp_path):
    p = write(tmp_path, "name: x\nchip:\n  cores: 3\n")
    with pytest.raises(ConfigError) as ei:
        load_yaml_model(p, Outer)
    (line,) = ei.value.problems
    assert "chip.sram_mb: required field is missing" in line
    assert line.startswith(f"{p}:3:")


def test_discriminator_tags_stripped(tmp_path):
    p = write(tmp_path, "things:\n  - {kind: a, alpha: 1}\n  - kind: b\n    beta: ok\n    gamma: 2\n")
    with pytest.raises(ConfigError) as ei:
        load_yaml_model(p, Tagged)
    (line,) = ei.value.problems
    assert line.startswith(f"{p}:5:5: things.1.gamma: unknown field"), line


def test_malformed_yaml(tmp_path):
    p = write(tmp_path, "name: x\nchip: [1, 2\n")
    with pytest.raises(ConfigError) as ei:
        load_yaml_model(p, Outer)
    assert str(ei.value).startswith(f"{p}:")
    assert "malformed YAML" in str(ei.value)


def test_missing_file(tmp_path):
    with pytest.raises(DseUserError, match="file not found"):
        load_yaml_model(tmp_path / "nope.yaml", Outer)


def test_not_a_mapping(tmp_path):
    p = write(tmp_path, "- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_yaml_model(p, Outer)


def test_data_argument(tmp_path):
    with pytest.raises(ConfigError) as ei:
        load_yaml_model("inline", Outer, data={"name": "x", "chip": {"sram_mb": 0}})
    assert ei.value.problems[0].startswith("inline: chip.sram_mb:")
    assert load_yaml_model("inline", Outer, data={"name": "x", "chip": {"sram_mb": 1}}).chip.sram_mb == 1


def test_suggest():
    msg = suggest("hbm3x", ["hbm3", "hbm3e", "lpddr5x"], "memory")
    assert msg.startswith("unknown memory 'hbm3x' (did you mean 'hbm3")
    assert "valid: hbm3, hbm3e, lpddr5x" in msg
    assert "did you mean" not in suggest("zzzz", ["hbm3"])
