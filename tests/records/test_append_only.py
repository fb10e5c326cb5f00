"""Append-only records: created once, never changed; corrections are new records."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from carecouch.errors import CouchForbidden
from tests.helpers.records import Write, observation, push, read, refusal
from tests.records.conftest import Caseload, Person


def test_recorded_observation_cannot_be_changed(
        caseload: Caseload, person: Callable[..., Person], write: Write) -> None:
    nurse = person("nurse")
    db = nurse.db(caseload)
    doc = observation(nurse.user, nurse.device)
    write(db, doc, None)
    stored = read(caseload.db, doc["_id"])
    with pytest.raises(CouchForbidden) as info:
        write(db, {**stored, "news2": 7}, stored)
    assert refusal(info.value) == "append_only.immutable"
    assert read(caseload.db, doc["_id"])["news2"] == 1


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
        push(db, {**stored, "news2": 9}, None,
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
