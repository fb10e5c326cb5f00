"""Envelope and schema: every record is typed, attributed, dated and carries only its fields."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from carecouch.errors import CouchForbidden
from tests.helpers.provisioned import Caseload, Person
from tests.helpers.records import Write, care_plan, observation, read, refusal


def bad(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**doc, **changes}
    return {k: v for k, v in out.items() if v is not DROP}


DROP = object()

CASES = [
    # (what is wrong, change to a valid observation, expected code)
    ("unknown type", {"type": "selfie"}, "envelope.unknown_type"),
    ("no type", {"type": DROP}, "envelope.unknown_type"),
    ("id not <type>:<uuid>", {"_id": "obs-1234567890"}, "envelope.bad_id"),
    ("id of another type", {"_id": "task:0b6c1a54-2f7e-4a39-9a53-1d2c3b4a5f60"},
     "envelope.bad_id"),
    ("no time", {"at": DROP}, "envelope.missing_field"),
    ("no device", {"device": DROP}, "envelope.missing_field"),
    ("no clock offset", {"clock_offset_ms": DROP}, "envelope.missing_field"),
    ("local time, not UTC", {"at": "2026-11-22T09:30:00+01:00"}, "schema.wrong_type"),
    ("impossible date", {"at": "2026-02-30T09:30:00Z"}, "schema.wrong_type"),
    ("clock offset not integer", {"clock_offset_ms": 1.5}, "schema.wrong_type"),
    ("subject with spaces", {"subject": "Jane Doe"}, "envelope.bad_subject"),
    ("number as text", {"spo2": "96"}, "schema.wrong_type"),
    ("not in the scale", {"consciousness": "X"}, "schema.not_allowed"),
    ("NEWS2 above 20", {"news2": 21}, "schema.out_of_range"),
    ("pulse below range", {"pulse": 5}, "schema.out_of_range"),
    ("required field missing", {"pulse": DROP}, "schema.missing_field"),
    ("required field null", {"pulse": None}, "schema.missing_field"),
    ("field the type does not have", {"mood": "good"}, "schema.unknown_field"),
]


def test_a_valid_observation_is_stored(caseload: Caseload, person: Callable[..., Person],
                                       write: Write) -> None:
    nurse = person("nurse")
    doc = observation(nurse.user, nurse.device)
    write(nurse.db(caseload), doc, None)
    assert read(caseload.db, doc["_id"])["news2"] == 0


@pytest.mark.parametrize(("problem", "change", "code"), CASES, ids=[c[0] for c in CASES])
def test_malformed_records_are_refused(caseload: Caseload, person: Callable[..., Person],
                                       write: Write, problem: str, change: dict[str, Any],
                                       code: str) -> None:
    nurse = person("nurse")
    doc = bad(observation(nurse.user, nurse.device), **change)
    with pytest.raises(CouchForbidden) as info:
        write(nurse.db(caseload), doc, None)
    assert refusal(info.value) == code
    assert caseload.db.get_or_none(doc["_id"]) is None


def test_type_and_subject_never_change(caseload: Caseload, person: Callable[..., Person],
                                       write: Write) -> None:
    nurse = person("nurse")
    db = nurse.db(caseload)
    plan = care_plan(nurse.user, nurse.device)
    write(db, plan, None)
    moved = {**read(caseload.db, plan["_id"]), "subject": "patient-002"}
    with pytest.raises(CouchForbidden) as info:
        write(db, moved, read(caseload.db, plan["_id"]))
    assert refusal(info.value) == "envelope.identity_changed"


def test_admins_are_held_to_the_schema_too(caseload: Caseload, write: Write) -> None:
    doc = observation("admin", "console", news2=99)
    with pytest.raises(CouchForbidden) as info:
        write(caseload.db, doc, None)
    assert refusal(info.value) == "schema.out_of_range"
