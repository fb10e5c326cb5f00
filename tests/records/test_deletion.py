"""Deletion: only conflict resolution (resolvers, admins) deletes, and only it restores."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from carecouch.errors import CouchConflict, CouchForbidden
from tests.helpers.provisioned import Caseload, Person
from tests.helpers.records import (
    Write,
    observation,
    push,
    put,
    read,
    refusal,
    settled,
    until_agreed,
)


def tombstone(doc: dict[str, object]) -> dict[str, object]:
    return {"_id": doc["_id"], "_deleted": True}


def test_clinician_cannot_delete_an_observation(
        caseload: Caseload, person: Callable[..., Person], write: Write) -> None:
    nurse = person("nurse")
    db = nurse.db(caseload)
    doc = observation(nurse.user, nurse.device)
    write(db, doc, None)
    stored = read(caseload.db, doc["_id"])
    with pytest.raises(CouchForbidden) as info:
        write(db, tombstone(doc), stored)
    assert refusal(info.value) == "delete.forbidden"
    # A DELETE right after the write may meet a copy that does not hold it yet (409 on a
    # cluster): retried as the write fixture retries, the refusal is the rule's.
    with pytest.raises(CouchForbidden) as info:
        until_agreed(caseload.db.copies(), lambda: str(db.delete(doc["_id"], stored["_rev"])))
    assert refusal(info.value) == "delete.forbidden"
    assert read(caseload.db, doc["_id"])["_rev"] == stored["_rev"]  # refused, stored nowhere


def test_resolver_deletes_and_restores(caseload: Caseload, person: Callable[..., Person],
                                       write: Write) -> None:
    nurse, resolver = person("nurse"), person("carecouch:resolver")
    doc = observation(nurse.user, nurse.device)
    write(nurse.db(caseload), doc, None)
    stored = read(caseload.db, doc["_id"])
    write(resolver.db(caseload), tombstone(doc), stored)
    assert caseload.db.get_or_none(doc["_id"]) is None
    # Undo: the resolver writes the discarded body back on top of the tombstone. That is a
    # replicated write (carecouch conflicts undo): an interactive edit naming the tombstone is
    # a conflict for anyone (couch_db_updater:merge_rev_tree/4), however it was deleted.
    tomb = caseload.db.open_revs(doc["_id"], "all", revs=True)[0]["ok"]
    with pytest.raises(CouchConflict):
        put(resolver.db(caseload), {**stored}, tomb)
    restore = settled(caseload.db.copies(), push, caseload.db)
    with pytest.raises(CouchForbidden) as info:
        restore(nurse.db(caseload), {**stored}, tomb)
    assert refusal(info.value) == "delete.restore_forbidden"
    restore(resolver.db(caseload), {**stored}, tomb)
    assert read(caseload.db, doc["_id"])["news2"] == stored["news2"]
