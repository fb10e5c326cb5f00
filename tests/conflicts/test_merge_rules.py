"""The merge and revision rules on their own (no server): total orders, no hidden inputs."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from carecouch.conflicts.branches import Branch, make_conflict
from carecouch.conflicts.errors import CannotResolve
from carecouch.conflicts.identity import resolver_for
from carecouch.conflicts.merge import completions, merge_fields, parse_time, same
from carecouch.conflicts.plan import plan_merge
from carecouch.records import load_registry
from carecouch.revs import child

REGISTRY = load_registry()
FIELDS = REGISTRY.types["task"].fields


def task(rev: str, parent: str = "1-aaaa", at: str = "2026-03-01T10:00:00Z",
         author: str = "ana", **fields: Any) -> dict[str, Any]:
    stamps = {name: stamp for name, (value, stamp) in fields.items()}
    doc = {"_id": "task:12345678", "_rev": rev, "type": "task", "subject": "p-1",
           "author": author, "device": "t", "at": at, "clock_offset_ms": 0,
           "_revisions": {"start": int(rev[0]), "ids": [rev[2:], parent[2:]]},
           **{name: value for name, (value, _) in fields.items()}, "changed": stamps}
    return doc


def stamp(by: str, at: str) -> dict[str, str]:
    return {"by": by, "at": at}


def test_times_compare_exactly() -> None:
    assert parse_time("2026-03-01T10:00:00Z") == parse_time("2026-03-01T10:00:00.000Z")
    assert parse_time("2026-03-01T10:00:00.000000001Z") > parse_time("2026-03-01T10:00:00Z")
    assert parse_time("2026-02-30T10:00:00Z") is None
    assert parse_time("2026-03-01 10:00:00") is None


def test_latest_stamp_wins_then_user_then_revision() -> None:
    docs = [
        task("2-bbbb", title=("by time", stamp("ana", "2026-03-01T10:00:01Z")),
             note=("ana's", stamp("ana", "2026-03-01T10:00:00Z")),
             due=("2-bbbb", stamp("same", "2026-03-01T10:00:00Z"))),
        task("2-cccc", title=("older", stamp("zoe", "2026-03-01T10:00:00.999Z")),
             note=("zoe's", stamp("zoe", "2026-03-01T10:00:00.000Z")),
             due=("2-cccc", stamp("same", "2026-03-01T10:00:00Z"))),
    ]
    for order in itertools.permutations(docs):
        choices = {c.name: c for c in merge_fields([Branch(d) for d in order], FIELDS,
                                                   "changed")}
        assert choices["title"].value == "by time"  # the later time
        assert choices["note"].value == "zoe's"  # same time: the greater user name
        assert choices["due"].value == "2-cccc"  # same time and user: the greater revision


def test_a_merge_reads_no_clock_and_no_host() -> None:
    docs = [task("2-bbbb", at="2026-03-01T10:05:00Z",
                 title=("a", stamp("ana", "2026-03-01T10:05:00Z"))),
            task("2-cccc", at="2026-03-01T10:09:00Z", author="ben",
                 title=("b", stamp("ana", "2026-03-01T10:00:00Z")),
                 done=(True, stamp("ben", "2026-03-01T10:09:00Z")))]
    plans = []
    for order, now in ((docs, "2026-03-02T00:00:00.000Z"), (docs[::-1], "2027-01-01T00:00:00Z")):
        conflict = make_conflict("c", "task:12345678", order, REGISTRY)
        plans.append(plan_merge(conflict, REGISTRY, {}, reason="r", now=now,
                                resolver=resolver_for("res~desk", clock_offset_ms=5)))
    assert plans[0].written == plans[1].written and plans[0].tombstones == plans[1].tombstones
    assert plans[0].resolution_id == plans[1].resolution_id
    written = plans[0].written
    assert written is not None
    assert (written["title"], written["done"], written["at"]) == ("a", True,
                                                                  "2026-03-01T10:09:00Z")
    assert (written["author"], written["device"], written["clock_offset_ms"]) == (
        "res", "desk", 0)  # the resolver signs; the time comes from the latest branch


def test_unstamped_differences_are_left_for_review() -> None:
    docs = [task("2-bbbb", title=("a", stamp("ana", "2026-03-01T10:00:00Z"))),
            {**task("2-cccc"), "title": "b", "changed": {}}]
    with pytest.raises(CannotResolve, match="no change stamp"):
        merge_fields([Branch(d) for d in docs], FIELDS, "changed")


def test_revisions_are_derived_from_parent_and_body() -> None:
    parent = {"_id": "task:1", "_rev": "2-bbbb", "_revisions": {"start": 2,
                                                               "ids": ["bbbb", "aaaa"]}}
    one = child(parent, {"_id": "task:1", "title": "x", "n": 1})
    assert one == child(parent, {"n": 1, "title": "x", "_rev": "ignored"})
    assert one["_revisions"]["ids"][1:] == ["bbbb", "aaaa"] and one["_rev"].startswith("3-")
    assert child(parent, {"title": "y"})["_rev"] != one["_rev"]
    tomb = child(parent, None)
    assert tomb["_deleted"] is True and set(tomb) == {"_id", "_rev", "_revisions", "_deleted"}
    assert child({**parent, "_rev": "2-cccc"}, None)["_rev"] != tomb["_rev"]


def test_first_completion_under_a_valid_lease() -> None:
    def done(rev: str, who: str, at: str, granted: str, expires: str) -> Branch:
        return Branch({"_rev": rev, "status": "signed", "completed_by": who,
                       "completed_at": at, "lease": {"holder": who, "granted_at": granted,
                                                     "expires_at": expires}})
    early_but_expired = done("3-aaaa", "ana", "2026-03-01T10:00:00Z", "2026-03-01T08:00:00Z",
                             "2026-03-01T09:00:00Z")
    valid = done("3-bbbb", "ben", "2026-03-01T10:30:00Z", "2026-03-01T10:00:00Z",
                 "2026-03-01T11:00:00Z")
    found = completions([valid, early_but_expired], ("signed",))
    assert [c.rev for c in found] == ["3-aaaa", "3-bbbb"]
    assert [c.valid for c in found] == [False, True]


def test_values_compare_as_json() -> None:
    assert same({"a": [1, "x"]}, {"a": [1, "x"]})
    assert not same(1, 1.0) and not same(True, 1) and not same({"a": 1}, {"a": True})
    assert not same("1", 1) and same(None, None)
