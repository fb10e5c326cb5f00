"""Append-only records: created once, never changed; corrections are new records."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from carecouch.couch import Database, Doc
from carecouch.errors import CouchForbidden
from tests.helpers.provisioned import Caseload, Person
from tests.helpers.records import Write, observation, push, read, refusal


def test_recorded_observation_cannot_be_changed(
        caseload: Caseload, person: Callable[..., Person], write: Write) -> None:
    nurse = person("nurse")
    db = nurse.db(caseload)
    doc = observation(nurse.user, nurse.device)
    write(db, doc, None)
    stored = read(caseload.db, doc["_id"])
    with pytest.raises(CouchForbidden) as info:
        write(db, {**stored, "note": "pulse re-checked"}, stored)
    assert refusal(info.value) == "append_only.immutable"
    assert "note" not in read(caseload.db, doc["_id"])


def test_correction_is_a_new_record_that_amends(
        caseload: Caseload, person: Callable[..., Person], write: Write) -> None:
    nurse = person("nurse")
    db = nurse.db(caseload)
    wrong = observation(nurse.user, nurse.device, pulse=48)
    write(db, wrong, None)
    fixed = observation(nurse.user, nurse.device, pulse=84, amends=wrong["_id"])
    write(db, fixed, None)
    assert read(caseload.db, fixed["_id"])["amends"] == wrong["_id"]
    assert read(caseload.db, wrong["_id"])["pulse"] == 48  # the trail stays


@pytest.mark.parametrize("amends", ["progress_note:0b6c1a54-2f7e-4a39-9a53-1d2c3b4a5f60",
                                    "SELF"])
def test_amends_must_name_another_record_of_the_type(
        caseload: Caseload, person: Callable[..., Person], write: Write, amends: str) -> None:
    nurse = person("nurse")
    doc = observation(nurse.user, nurse.device)
    doc["amends"] = doc["_id"] if amends == "SELF" else amends
    with pytest.raises(CouchForbidden) as info:
        write(nurse.db(caseload), doc, None)
    assert refusal(info.value) == "append_only.bad_amends"


def test_pushed_edit_with_made_up_history_is_refused(
        caseload: Caseload, person: Callable[..., Person]) -> None:
    """A device claims a second revision whose first never reached the server: CouchDB's
    validation sees no ancestor (oldDoc is null), and the revision number gives it away."""
    nurse = person("nurse")
    doc = observation(nurse.user, nurse.device)
    with pytest.raises(CouchForbidden) as info:
        push(nurse.db(caseload), doc, None, history=[uuid.uuid4().hex])
    assert refusal(info.value) == "append_only.immutable"
    assert caseload.db.get_or_none(doc["_id"]) is None


def test_made_up_intermediate_revisions_do_not_hide_the_stored_one(
        caseload: Caseload, person: Callable[..., Person]) -> None:
    """History [3-new, 2-invented, 1-stored]: validation still compares with 1-stored, the
    nearest ancestor the server holds, so the edit is seen for what it is."""
    nurse = person("nurse")
    db = nurse.db(caseload)
    doc = observation(nurse.user, nurse.device)
    push(db, doc, None)
    stored = read(caseload.db, doc["_id"])
    with pytest.raises(CouchForbidden) as info:
        push(db, {**stored, "note": "rewritten"}, None,
             history=[uuid.uuid4().hex, *stored["_revisions"]["ids"]])
    assert refusal(info.value) == "append_only.immutable"
    assert read(caseload.db, doc["_id"])["_rev"] == stored["_rev"]


def test_same_revision_pushed_twice_is_accepted_once(
        caseload: Caseload, person: Callable[..., Person]) -> None:
    """A retried push (the first reply was lost) must not be refused as an edit."""
    nurse = person("nurse")
    db = nurse.db(caseload)
    doc = observation(nurse.user, nurse.device)
    rev = push(db, doc, None)
    stored = read(caseload.db, doc["_id"])
    assert db.bulk_docs([stored], new_edits=False) == []
    assert read(caseload.db, doc["_id"], rev)["_rev"] == rev
    assert "_conflicts" not in caseload.db.get(doc["_id"], conflicts=True)


def _first_revision(db: Database, doc: Doc, rev_hash: str) -> str:
    """A replicated first revision with a chosen revision id (a hostile device chooses it)."""
    body = {**doc, "_rev": f"1-{rev_hash}", "_revisions": {"start": 1, "ids": [rev_hash]}}
    for item in db.bulk_docs([body], new_edits=False):
        if item.get("error"):
            raise CouchForbidden(item["reason"], status=403, error=item["error"])
    return str(body["_rev"])


def test_another_member_cannot_put_their_content_beside_a_record(
        caseload: Caseload, person: Callable[..., Person]) -> None:
    # Issue 10, attack 2: nurse B pushes a first revision 1-ffff... on nurse A's observation
    # id, as herself, with a pulse of 180; with no stored ancestor it passed as a creation and,
    # sorting higher, became the winning revision every reader saw.
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    mine = observation(a.user, a.device)
    real = _first_revision(a.db(caseload), mine, "0" * 32)
    forged = {**mine, "author": b.user, "device": b.device, "pulse": 180, "news2": 3}
    with pytest.raises(CouchForbidden) as info:
        _first_revision(b.db(caseload), forged, "f" * 32)
    assert refusal(info.value) == "append_only.not_owner"
    shown = caseload.db.get(mine["_id"], conflicts=True)
    assert (shown["_rev"], shown["pulse"], "_conflicts" in shown) == (real, 84, False)


@pytest.mark.parametrize("owner", ["someone-else~tablet-a", "{user}~another-tablet", "{user}"])
def test_only_the_account_named_in_the_id_writes_it(
        caseload: Caseload, person: Callable[..., Person], write: Write, owner: str) -> None:
    # The same clinician on another device, or as a bare user, is another account too: a
    # shared tablet's next holder cannot replace the last one's records either.
    nurse = person("nurse")
    doc = observation(nurse.user, nurse.device)
    doc["_id"] = f"observation:{owner.format(user=nurse.user)}:{uuid.uuid4()}"
    with pytest.raises(CouchForbidden) as info:
        write(nurse.db(caseload), doc, None)
    assert refusal(info.value) == "append_only.not_owner"


def test_an_unbound_id_is_refused_for_new_records(
        caseload: Caseload, person: Callable[..., Person], write: Write) -> None:
    nurse = person("nurse")
    doc = {**observation(nurse.user, nurse.device), "_id": f"observation:{uuid.uuid4()}"}
    with pytest.raises(CouchForbidden) as info:
        write(nurse.db(caseload), doc, None)
    assert refusal(info.value) == "append_only.not_owner"
    assert f"observation:{nurse.user}~{nurse.device}:<uuid>" in info.value.reason


def test_a_retried_push_of_ones_own_record_is_idempotent(
        caseload: Caseload, person: Callable[..., Person]) -> None:
    nurse = person("nurse")
    doc = observation(nurse.user, nurse.device)
    rev = _first_revision(nurse.db(caseload), doc, "a" * 32)
    assert _first_revision(nurse.db(caseload), doc, "a" * 32) == rev
    assert [r["ok"]["_rev"] for r in caseload.db.open_revs(doc["_id"])] == [rev]


def test_records_stored_before_ids_were_bound_stay_repairable(
        caseload: Caseload, person: Callable[..., Person]) -> None:
    # An old record (unbound id, written before this rule) cannot gain a sibling from anyone
    # but an admin, and a resolver may still delete and restore it.
    nurse, other = person("nurse"), person("nurse", device="tablet-2")
    resolver = person("carecouch:resolver", member=True)
    old = {**observation(nurse.user, nurse.device), "_id": f"observation:{uuid.uuid4()}"}
    caseload.db.put(old)  # as the admin: how it was stored before
    with pytest.raises(CouchForbidden) as info:
        _first_revision(other.db(caseload), {**old, "author": other.user,
                                             "device": other.device}, "f" * 32)
    assert refusal(info.value) == "append_only.not_owner"
    stored = read(caseload.db, old["_id"])
    resolver.db(caseload).delete(old["_id"], stored["_rev"])
    # Undo, as `carecouch conflicts undo` writes it: the body replicated onto the tombstone.
    tomb = caseload.db.open_revs(old["_id"], "all", revs=True)[0]["ok"]
    push(resolver.db(caseload), stored, tomb)
    assert caseload.db.get(old["_id"])["pulse"] == 84
