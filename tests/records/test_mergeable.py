"""Mergeable records: anyone with a writing role updates them, stamping each field changed."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from carecouch.errors import CouchForbidden
from tests.helpers.provisioned import Caseload, Person
from tests.helpers.records import Write, care_plan, now, push, read, refusal


def edit(doc: dict[str, Any], writer: Person, **fields: Any) -> dict[str, Any]:
    """``doc`` with ``fields`` changed and stamped by ``writer``, as a device makes it."""
    out = {**doc, **fields, "author": writer.user, "device": writer.device, "at": now()}
    out["changed"] = {**doc["changed"],
                      **{name: {"by": writer.user, "at": now()} for name in fields}}
    return out


def test_create_and_stamped_updates_by_several_clinicians(
        caseload: Caseload, person: Callable[..., Person], write: Write) -> None:
    nurse, therapist = person("nurse"), person("therapist")
    plan = care_plan(nurse.user, nurse.device)
    write(nurse.db(caseload), plan, None)
    stored = read(caseload.db, plan["_id"])
    write(therapist.db(caseload), edit(stored, therapist, interventions=["compression"]),
          stored)
    result = read(caseload.db, plan["_id"])
    assert result["interventions"] == ["compression"]
    assert result["changed"]["interventions"]["by"] == therapist.user
    assert result["changed"]["title"]["by"] == nurse.user  # untouched field keeps its stamp


def test_unstamped_change_is_refused(caseload: Caseload, person: Callable[..., Person],
                                     write: Write) -> None:
    nurse = person("nurse")
    db = nurse.db(caseload)
    plan = care_plan(nurse.user, nurse.device)
    write(db, plan, None)
    stored = read(caseload.db, plan["_id"])
    with pytest.raises(CouchForbidden) as info:
        write(db, {**stored, "title": "Pressure ulcer"}, stored)  # stamp not renewed
    assert refusal(info.value) == "mergeable.unstamped_change"


def test_restamping_a_field_one_did_not_change_is_refused(
        caseload: Caseload, person: Callable[..., Person], write: Write) -> None:
    nurse, other = person("nurse"), person("nurse")
    plan = care_plan(nurse.user, nurse.device)
    write(nurse.db(caseload), plan, None)
    stored = read(caseload.db, plan["_id"])
    forged = edit(stored, other, note="seen")
    forged["changed"]["title"] = {"by": other.user, "at": now()}  # claims the title
    with pytest.raises(CouchForbidden) as info:
        write(other.db(caseload), forged, stored)
    assert refusal(info.value) == "mergeable.forged_stamp"


def test_stamp_in_someone_elses_name_is_refused(
        caseload: Caseload, person: Callable[..., Person], write: Write) -> None:
    nurse, other = person("nurse"), person("nurse")
    plan = care_plan(nurse.user, nurse.device)
    write(nurse.db(caseload), plan, None)
    stored = read(caseload.db, plan["_id"])
    forged = edit(stored, nurse, note="seen")  # changed by `other`, stamped as `nurse`
    forged.update(author=other.user, device=other.device)
    with pytest.raises(CouchForbidden) as info:
        write(other.db(caseload), forged, stored)
    assert refusal(info.value) == "mergeable.forged_stamp"


@pytest.mark.parametrize(("stamps", "code"), [
    (None, "mergeable.missing_stamps"),
    ({"title": {"by": "x"}}, "mergeable.bad_stamp"),
    ({"title": {"by": "SELF", "at": "yesterday"}}, "mergeable.bad_stamp"),
    ({"title": {"by": "SELF", "at": "2026-11-22T10:00:00Z"}, "mood": {"by": "SELF",
      "at": "2026-11-22T10:00:00Z"}}, "mergeable.bad_stamp"),
    ({"title": {"by": "someone-else", "at": "2026-11-22T10:00:00Z"},
      "goals": {"by": "SELF", "at": "2026-11-22T10:00:00Z"}}, "mergeable.forged_stamp"),
    ({"title": {"by": "SELF", "at": "2026-11-22T10:00:00Z"}}, "mergeable.unstamped_change"),
], ids=["no stamps", "no time", "bad time", "undeclared field", "creator not stamped",
        "field without stamp"])
def test_malformed_stamps_on_create(caseload: Caseload, person: Callable[..., Person],
                                    write: Write, stamps: dict[str, Any] | None,
                                    code: str) -> None:
    nurse = person("nurse")
    plan = care_plan(nurse.user, nurse.device)
    if stamps is None:
        del plan["changed"]
    else:
        plan["changed"] = {k: {**v, "by": nurse.user} if v.get("by") == "SELF" else v
                           for k, v in stamps.items()}
    with pytest.raises(CouchForbidden) as info:
        write(nurse.db(caseload), plan, None)
    assert refusal(info.value) == code


def test_created_and_edited_offline_then_pushed(
        caseload: Caseload, person: Callable[..., Person]) -> None:
    """Created and edited twice before the first sync: the server receives only the leaf,
    3-c with history [c, b, a], and holds no ancestor. It is accepted (stamps checked for
    form only, see the rule's documented limit)."""
    nurse = person("nurse")
    plan = edit(care_plan(nurse.user, nurse.device), nurse, note="dressing changed")
    push(nurse.db(caseload), plan, None, history=[uuid.uuid4().hex, uuid.uuid4().hex])
    stored = read(caseload.db, plan["_id"])
    assert stored["_revisions"]["start"] == 3
    assert stored["note"] == "dressing changed"
