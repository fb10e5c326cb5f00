"""The Python copies of the record rules' patterns are the rules' own (the JS is the truth)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from carecouch.records import RECORD_ID_SUFFIX_PATTERN, RECORD_OWNER_PATTERN, SUBJECT_PATTERN

RULES = Path(__file__).resolve().parents[1] / "couch" / "validate_functions"


def js_pattern(file: str, name: str) -> str:
    """The body of ``var <name> = /^...$/;`` in a rule file."""
    found = re.search(rf"^var {name} = /\^(.*)\$/;$", (RULES / file).read_text(), re.MULTILINE)
    assert found, f"{file} no longer declares {name} as an anchored regular expression"
    return found.group(1)


@pytest.mark.parametrize(("python", "file", "name"), [
    (SUBJECT_PATTERN, "envelope.js", "SUBJECT"),
    (RECORD_ID_SUFFIX_PATTERN, "common.js", "ID_SUFFIX"),
    (RECORD_OWNER_PATTERN, "common.js", "ID_OWNER"),
])
def test_python_copy_equals_the_rule(python: re.Pattern[str], file: str, name: str) -> None:
    assert python.pattern == js_pattern(file, name)
