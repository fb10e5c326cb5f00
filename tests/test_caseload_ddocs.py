"""Design documents assembled from files: the layout of docs/decisions.md and the content hash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from carecouch.config import default_couch_dir
from carecouch.couch import Database
from carecouch.ddocs import (
    DesignDocError,
    assemble,
    canonical_json,
    content_hash,
    stamped_version,
)


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


SAMPLE = {
    "design_docs/carecouch/views/by_subject/map.js": "function (doc) { emit(doc.subject); }\n",
    "design_docs/carecouch/views/by_subject/reduce.js": "  _count\n",
    "design_docs/carecouch/views/custom/map.js": "function (doc) { emit(1, 2); }",
    "design_docs/carecouch/views/custom/reduce.js": "function (k, v) { return sum(v); }",
    "design_docs/carecouch/filters/mine.js": "function (doc, req) { return true; }",
    "design_docs/carecouch/lib/time/parse.js": "exports.parse = function () {};",
    "design_docs/carecouch/README.md": "notes beside the code are skipped",
    "validate_functions/validate_doc_update.js":
        "function (newDoc, oldDoc, userCtx) { require('lib/validate/author'); }",
    "validate_functions/author.js": "exports.check = function () {};",
}


def test_assembles_the_layout(tmp_path: Path) -> None:
    docs = assemble(write(tmp_path, SAMPLE))
    assert list(docs) == ["_design/carecouch"]
    doc = docs["_design/carecouch"]
    assert doc["language"] == "javascript"
    assert doc["views"]["by_subject"] == {"map": "function (doc) { emit(doc.subject); }\n",
                                         "reduce": "_count"}  # the built-in, not JavaScript
    assert doc["views"]["custom"]["reduce"] == "function (k, v) { return sum(v); }\n"
    assert doc["filters"] == {"mine": "function (doc, req) { return true; }\n"}
    assert doc["lib"]["time"]["parse"] == "exports.parse = function () {};\n"
    assert doc["lib"]["validate"]["author"] == "exports.check = function () {};\n"
    assert doc["validate_doc_update"].startswith("function (newDoc, oldDoc, userCtx)")
    assert "record_types" not in doc["lib"]  # the registry file is absent: nothing added
    assert doc["carecouch"] == {"version": content_hash(doc)}


MINIMAL_REGISTRY = {
    "version": 1, "envelope": {"type": "string"}, "roles": {}, "exclusive_fields": {},
    "mergeable_metadata_field": "changed",
    "types": {"note": {"class": "append-only", "writers": ["clinical:nurse"],
                       "fields": {"text": {"type": "string", "required": True}}}},
}


def test_record_types_become_modules_when_present(tmp_path: Path) -> None:
    write(tmp_path, SAMPLE)
    (tmp_path / "validate_functions" / "record_types.json").write_text(
        json.dumps(MINIMAL_REGISTRY))
    doc = assemble(tmp_path)["_design/carecouch"]
    module = f"module.exports = {canonical_json(MINIMAL_REGISTRY)};"
    assert doc["lib"]["record_types"] == module
    assert doc["views"]["lib"]["record_types"] == module


def test_an_inconsistent_registry_is_refused(tmp_path: Path) -> None:
    write(tmp_path, SAMPLE)
    broken = {**MINIMAL_REGISTRY, "types": {"note": {"class": "sticky", "writers": ["x:y"],
                                                     "fields": {}}}}
    (tmp_path / "validate_functions" / "record_types.json").write_text(json.dumps(broken))
    with pytest.raises(DesignDocError, match="type note: class must be one of"):
        assemble(tmp_path)


def test_validation_is_left_out_until_its_entry_file_exists(tmp_path: Path) -> None:
    files = {k: v for k, v in SAMPLE.items() if "validate_doc_update" not in k}
    doc = assemble(write(tmp_path, files))["_design/carecouch"]
    assert "validate_doc_update" not in doc
    assert "validate" not in doc["lib"]


def test_hash_is_stable_and_follows_content(tmp_path: Path) -> None:
    write(tmp_path, SAMPLE)
    first = stamped_version(assemble(tmp_path)["_design/carecouch"])
    assert stamped_version(assemble(tmp_path)["_design/carecouch"]) == first
    write(tmp_path, {"design_docs/carecouch/filters/mine.js": "function (doc) { return 1; }"})
    assert stamped_version(assemble(tmp_path)["_design/carecouch"]) != first


def test_hash_ignores_id_rev_and_stamp(tmp_path: Path) -> None:
    doc = assemble(write(tmp_path, SAMPLE))["_design/carecouch"]
    stored = {**doc, "_rev": "3-abc", "carecouch": {"version": "anything"}}
    assert content_hash(stored) == stamped_version(doc)
    assert content_hash({**stored, "views": {}}) != stamped_version(doc)


@pytest.mark.parametrize(("files", "message"), [
    ({"design_docs/carecouch/shows/x.js": "function () {}"}, "not part of the design-document"),
    ({"design_docs/carecouch/views/v/reduce.js": "_count"}, "a view needs a map.js"),
    ({"design_docs/carecouch/filters/x.json": "{}"}, "only .js files belong here"),
    ({"design_docs/carecouch/lib/a.js": "x", "design_docs/carecouch/lib/a/b.js": "y"},
     "module lib/a clashes with another file"),
])
def test_layout_errors_name_the_file(tmp_path: Path, files: dict[str, str],
                                     message: str) -> None:
    write(tmp_path, files)
    with pytest.raises(DesignDocError, match=message):
        assemble(tmp_path)


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DesignDocError, match="no design documents at .*CARECOUCH_COUCH_DIR"):
        assemble(tmp_path / "nowhere")


def test_shipped_design_document_has_the_conflicts_view() -> None:
    doc = assemble(default_couch_dir())["_design/carecouch"]
    assert doc["views"]["conflicts"]["reduce"] == "_count"
    assert "emit([doc.type || null, doc._id], {" in doc["views"]["conflicts"]["map"]


def test_shipped_conflicts_view_runs_on_the_server(db: Database, tmp_path: Path) -> None:
    # Only the views: this test writes bare documents that the record rules would refuse.
    shutil.copytree(default_couch_dir() / "design_docs", tmp_path / "design_docs")
    db.put(assemble(tmp_path)["_design/carecouch"])
    db.put({"_id": "plain", "type": "observation"})
    db.bulk_docs([{"_id": "observation:1", "type": "observation", "_rev": "1-aaa"},
                  {"_id": "observation:1", "type": "observation", "_rev": "1-bbb"},
                  {"_id": "note:1", "_rev": "1-aaa"}, {"_id": "note:1", "_rev": "1-bbb"},
                  {"_id": "note:1", "_rev": "1-ccc"}], new_edits=False)
    rows = db.view("carecouch", "conflicts", reduce=False)["rows"]
    # The value names the live leaves, so conflict review fetches only those.
    assert [(r["key"], r["value"]["rev"], sorted(r["value"]["conflicts"]), r["value"]["subject"])
            for r in rows] == [([None, "note:1"], "1-ccc", ["1-aaa", "1-bbb"], None),
                               (["observation", "observation:1"], "1-bbb", ["1-aaa"], None)]
    assert db.view("carecouch", "conflicts")["rows"][0]["value"] == 2
