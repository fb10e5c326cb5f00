"""The record-type registry as Python reads it: the shipped one loads, broken ones are refused."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from carecouch.records import (
    RegistryError,
    load_registry,
    parse_registry,
    same_json,
    stamp_changes,
)


@pytest.fixture
def shipped() -> dict[str, Any]:
    registry = load_registry()
    return copy.deepcopy(dict(registry.raw))


def test_shipped_registry_covers_the_issue(shipped: dict[str, Any]) -> None:
    registry = parse_registry(shipped)
    classes = {name: t.record_class for name, t in registry.types.items()}
    assert classes == {
        "observation": "append-only", "administration": "append-only",
        "consent": "append-only", "progress_note": "append-only",
        "resolution": "append-only", "care_plan": "mergeable", "task": "mergeable",
        "order_signoff": "exclusive", "cd_check": "exclusive"}
    assert registry.types["observation"].fields["news2"].max == 20
    assert registry.writable_with(["clinical:hca"]) == ["observation", "progress_note", "task"]
    assert registry.types["resolution"].writers == ("carecouch:resolver",)


@pytest.mark.parametrize(("change", "message"), [
    (lambda r: r["types"]["task"].update({"class": "sticky"}), "class must be one of"),
    (lambda r: r["types"]["task"].update({"writers": []}), "writers must list roles"),
    (lambda r: r["types"]["task"]["fields"].update({"due": {"type": "date"}}),
     "type must be one of"),
    (lambda r: r["types"]["task"]["fields"].update({"author": {"type": "string"}}),
     "field author is reserved"),
    (lambda r: r["types"]["task"]["fields"].update({"changed": {"type": "object"}}),
     "field changed is reserved"),
    (lambda r: r["types"]["cd_check"]["fields"]["status"]["enum"].append("lost"),
     "can never be reached"),
    (lambda r: r["types"]["cd_check"].update({"initial_status": "done"}),
     "initial_status must be one of"),
    (lambda r: r["types"]["cd_check"]["transitions"].update({"witnessed": ["pending"]}),
     "terminal status witnessed cannot have transitions"),
    (lambda r: r.update({"version": "1"}), "version must be an integer"),
    (lambda r: r["types"]["task"].update({"urgent": "yes"}), "urgent must be true, false"),
    (lambda r: r["types"]["observation"].update({"urgent": {"score": {"$gte": 5}}}),
     "a selector over the type's own fields"),
], ids=["class", "writers", "field type", "envelope clash", "stamps clash", "unreachable",
        "initial", "terminal moves", "version", "urgent kind", "urgent field"])
def test_inconsistent_registries_are_refused(shipped: dict[str, Any], change: Any,
                                             message: str) -> None:
    change(shipped)
    with pytest.raises(RegistryError, match=message):
        parse_registry(shipped)


def test_unreadable_registry_names_the_file(tmp_path: Any) -> None:
    path = tmp_path / "record_types.json"
    path.write_text("{not json")
    with pytest.raises(RegistryError, match="record_types.json: not valid JSON"):
        load_registry(path)
    path.write_text(json.dumps({"types": {}}))
    with pytest.raises(RegistryError, match="record_types.json: envelope must be an object"):
        load_registry(path)


def test_change_stamps_follow_the_mergeable_rule() -> None:
    registry = load_registry()
    base = {"_id": "care_plan:1", "_rev": "1-a", "type": "care_plan", "subject": "p-1",
            "author": "ann", "at": "2026-01-01T00:00:00Z", "title": "A", "goals": ["walk"],
            "review_date": "2026-02-01", "note": "n",
            "changed": {f: {"by": "ann", "at": "2026-01-01T00:00:00Z"}
                        for f in ("title", "goals", "review_date", "note")}}
    edit = {**base, "author": "bob", "at": "2026-01-02T00:00:00Z", "title": "B",
            "goals": ["walk"], "status": "active"}
    del edit["note"]
    stamps = stamp_changes(registry, edit, base, "bob", "T")
    assert stamps is not None
    assert {f for f, s in stamps.items() if s["by"] == "bob"} == {"title", "status", "note"}
    assert stamps["goals"] == base["changed"]["goals"]  # unchanged: the old stamp, untouched

    new = stamp_changes(registry, {"type": "task", "title": "x", "done": False}, None, "cy", "T")
    assert new == {"title": {"by": "cy", "at": "T"}, "done": {"by": "cy", "at": "T"}}
    assert stamp_changes(registry, {"type": "observation", "pulse": 1}, None, "cy", "T") is None
    # JSON equality as the validation function sees it, not Python's (True == 1).
    assert same_json(1, 1.0) and same_json({"a": [1]}, {"a": [1.0]})
    assert not same_json(1, True) and not same_json(0, False) and not same_json([1], [1, 2])
