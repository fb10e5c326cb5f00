"""The assembled design documents: ES5 everywhere (every engine CouchDB 3.x ships runs them),
and the record-rule codes documented for clinical safety review match the code."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from carecouch.config import default_couch_dir
from carecouch.ddocs import assemble

ROOT = Path(__file__).resolve().parent.parent


def sources(value: Any, path: tuple[str, ...] = ()) -> dict[str, dict[str, str]]:
    """Every JavaScript string in a design document, named by its path."""
    found: dict[str, dict[str, str]] = {}
    if isinstance(value, dict):
        for key, child in value.items():
            found.update(sources(child, (*path, key)))
    elif isinstance(value, str) and path and path[0] in ("views", "filters", "lib",
                                                         "validate_doc_update"):
        if value in ("_count", "_sum", "_stats"):
            return found
        kind = "module" if path[0] == "lib" or path[:2] == ("views", "lib") else "function"
        found["/".join(path)] = {"kind": kind, "source": value}
    return found


def es5_failures(items: dict[str, dict[str, str]]) -> dict[str, str]:
    result = subprocess.run(["node", str(ROOT / "tests/helpers/es5check.js")],
                            input=json.dumps(items), capture_output=True, text=True,
                            check=True, cwd=ROOT)
    failures: dict[str, str] = json.loads(result.stdout)
    return failures


def test_every_design_document_is_es5() -> None:
    items: dict[str, dict[str, str]] = {}
    for ddoc_id, doc in assemble().items():
        items.update({f"{ddoc_id}/{k}": v for k, v in sources(doc).items()})
    assert "_design/carecouch/validate_doc_update" in items
    assert any(k.startswith("_design/carecouch/lib/validate/") for k in items)
    assert es5_failures(items) == {}


def test_the_es5_check_catches_modern_syntax() -> None:
    modern = {"arrow": {"kind": "function", "source": "(doc) => emit(doc._id)"},
              "let": {"kind": "module", "source": "let x = 1; exports.x = x;"},
              "fine": {"kind": "function", "source": "function (doc) { emit(doc._id); }"}}
    assert set(es5_failures(modern)) == {"arrow", "let"}


def refusal_codes() -> set[str]:
    codes: set[str] = set()
    for path in (default_couch_dir() / "validate_functions").glob("*.js"):
        # refuse(code, ...) and common.problem(ctx, code, ...) (collected problems)
        codes |= set(re.findall(r"(?:refuse\(|problem\(ctx, )'([a-z_]+\.[a-z_]+)'",
                                path.read_text()))
    return codes


def test_rule_codes_and_their_documentation_agree() -> None:
    documented = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|",
                                (ROOT / "docs/record-rules.md").read_text(), re.MULTILINE))
    codes = refusal_codes()
    assert len(codes) > 25
    assert codes - documented == set(), "codes the rules use but the document does not list"
    assert documented - codes == set(), "codes documented but no longer used"


@pytest.mark.parametrize("name", ["validate_doc_update.js"])
def test_function_files_start_with_the_function(name: str) -> None:
    # PouchDB Server evaluates "return " + source: a leading comment would end the statement.
    text = (default_couch_dir() / "validate_functions" / name).read_text()
    assert text.startswith("function")
