"""Conflicts of every record class, made through the caseload's validation as devices do."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from carecouch.couch import Database, Doc
from tests.helpers.records import care_plan, lease, now, observation, push, put, read
from tests.records.conftest import Caseload, Person
from tests.records.test_exclusive import completion, leased_order


@dataclass
class Made:
    doc_id: str
    revs: list[str]  # the live leaves, in the order they were pushed


def edit(doc: Doc, writer: Person, at: str | None = None, **fields: Any) -> Doc:
    """``doc`` with ``fields`` changed and stamped by ``writer`` at ``at``, as a device does."""
    when = at or now()
    out = {**doc, **fields, "author": writer.user, "device": writer.device, "at": when}
    out["changed"] = {**doc["changed"], **{name: {"by": writer.user, "at": when}
                                          for name in fields}}
    return out


def mergeable(caseload: Caseload, a: Person, b: Person, *, a_at: str | None = None,
              b_at: str | None = None, **plan_fields: Any) -> Made:
    """A creates a care plan online; both devices pull it; A changes the title and B the
    goals and note offline; both push."""
    plan = care_plan(a.user, a.device, **plan_fields)
    put(a.db(caseload), plan)
    base = read(caseload.db, plan["_id"])
    rev_a = push(a.db(caseload), edit(base, a, a_at, title="Venous ulcer, left leg"), base)
    rev_b = push(b.db(caseload), edit(base, b, b_at, goals=["heal within 8 weeks"],
                                      note="compression tolerated"), base)
    return Made(plan["_id"], [rev_a, rev_b])


def duplicate(caseload: Caseload, nurse: Person) -> Made:
    """An observation pushed twice: the device's retry after a lost answer made a new
    revision id for the same content."""
    obs = observation(nurse.user, nurse.device)
    first = push(nurse.db(caseload), obs)
    second = push(nurse.db(caseload), obs)
    return Made(obs["_id"], [first, second])


def diverged_observation(caseload: Caseload, a: Person, b: Person) -> Made:
    """Two devices each created the same observation id with different values (a device
    restored from a backup re-created it with a corrected pulse)."""
    obs = observation(a.user, a.device)
    first = push(a.db(caseload), obs)
    second = push(b.db(caseload), {**obs, "author": b.user, "device": b.device, "pulse": 92})
    return Made(obs["_id"], [first, second])


def exclusive(caseload: Caseload, bridge: Person, a: Person, b: Person) -> Made:
    """The lease race (tests/records/test_race.py): A completes offline under a lease that
    then expires; B is granted the record and completes online; A syncs."""
    on_a = leased_order(caseload, bridge, a, minutes=30, start=-90)
    a_done = completion(on_a, a, completed_at=now(-70))
    put(bridge.db(caseload), {**on_a, "lease": lease(b.user, b.device)}, on_a)
    on_b = read(caseload.db, on_a["_id"])
    put(b.db(caseload), completion(on_b, b), on_b)
    b_rev = read(caseload.db, on_a["_id"])["_rev"]
    a_rev = push(a.db(caseload), a_done, on_a)
    return Made(on_a["_id"], [b_rev, a_rev])


def resolutions(db: Database) -> list[Doc]:
    rows = db.all_docs(startkey="resolution:", endkey="resolution:\ufff0",
                       include_docs=True)["rows"]
    return [r["doc"] for r in rows]


def body(doc: Doc) -> Doc:
    """What a clinician wrote: the document without revision metadata."""
    return {k: v for k, v in doc.items() if k not in ("_rev", "_revisions")}


def live(db: Database, doc_id: str) -> dict[str, Doc]:
    """The live leaves of a document, by revision."""
    return {r["ok"]["_rev"]: r["ok"] for r in db.leaf_revisions(doc_id)
            if isinstance(r.get("ok"), dict) and not r["ok"].get("_deleted")}


def compact(db: Database, doc_id: str, gone: str, timeout: float = 60) -> None:
    """Compact and wait until revision ``gone``'s body is no longer held."""
    db.compact()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all("missing" in r for r in db.open_revs(doc_id, [gone])):
            return
        time.sleep(0.2)
    raise AssertionError(f"compaction did not remove {doc_id} {gone} in {timeout} s")


Factory = Callable[..., Person]
