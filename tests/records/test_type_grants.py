"""Narrowed sessions: the bridge's policy may grant fewer record types than the clinical role
admits; the marker role `carecouch:writes-restricted` makes the server hold the session to its
`carecouch:writes:<type>` roles (authorship.js, `auth.type_not_granted`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from carecouch.errors import CouchForbidden
from tests.helpers.provisioned import Caseload, Person
from tests.helpers.records import Write, administration, envelope, observation, refusal

RESTRICTED = "carecouch:writes-restricted"


def test_a_granted_type_is_written(caseload: Caseload, person: Callable[..., Person],
                                   write: Write) -> None:
    nurse = person("nurse", RESTRICTED, "carecouch:writes:observation")
    doc = observation(nurse.user, nurse.device)
    write(nurse.db(caseload), doc, None)
    assert caseload.db.get(doc["_id"])["author"] == nurse.user


def test_a_type_the_role_admits_but_the_policy_does_not_is_refused(
        caseload: Caseload, person: Callable[..., Person], write: Write) -> None:
    nurse = person("nurse", RESTRICTED, "carecouch:writes:observation")
    with pytest.raises(CouchForbidden) as info:
        write(nurse.db(caseload), administration(nurse.user, nurse.device), None)
    assert refusal(info.value) == "auth.type_not_granted"


def test_a_type_grant_does_not_replace_the_clinical_role(
        caseload: Caseload, person: Callable[..., Person], write: Write) -> None:
    # The policy cannot widen what the record-type registry allows a role.
    hca = person("hca", RESTRICTED, "carecouch:writes:administration")
    with pytest.raises(CouchForbidden) as info:
        write(hca.db(caseload), administration(hca.user, hca.device), None)
    assert refusal(info.value) == "auth.role_required"


def test_without_the_marker_the_roles_alone_decide(
        caseload: Caseload, person: Callable[..., Person], write: Write) -> None:
    nurse = person("nurse", "carecouch:writes:observation")  # no marker: not narrowed
    write(nurse.db(caseload), administration(nurse.user, nurse.device), None)
    note = envelope("progress_note", nurse.user, nurse.device, text="Seen at home.")
    write(nurse.db(caseload), note, None)
