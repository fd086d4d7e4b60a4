"""libyaml's loader (dse.config's fast path) reads every shipped YAML file to the same data and the same
line/column positions as the pure-Python reader, and malformed text still gets the Python reader's message."""

from pathlib import Path

import pytest
import yaml

from dse import config
from dse.config import ConfigError, parse_yaml_text_documents

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p for d in ("dse", "studies", "search_spaces", "dashboards") for p in (ROOT / d).rglob("*.yaml"))


@pytest.mark.skipif(config._FAST_LOADER is None, reason="PyYAML built without libyaml")
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_fast_and_python_loaders_agree(path):
    text = path.read_text(encoding="utf-8")
    fast = config._parse_documents(config._FAST_LOADER, text, str(path), single=False)
    slow = config._parse_documents(yaml.SafeLoader, text, str(path), single=False)
    assert fast == slow


def test_shipped_files_are_found():
    assert len(SHIPPED) > 10 and any(p.name == "chips.yaml" for p in SHIPPED)


@pytest.mark.parametrize("text, expected", [
    ("a: [1, 2\n", "<t>:2:1: malformed YAML"),
    ("a: 1\n\x07b: 2\n", "<t>:2:1: (top level): malformed YAML: character U+0007 is not allowed"),
])
def test_malformed_text_gets_the_python_readers_message(text, expected):
    with pytest.raises(ConfigError) as err:
        parse_yaml_text_documents(text, "<t>")
    assert expected in str(err.value)
