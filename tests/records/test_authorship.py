"""Authorship and roles: a revision names its real writer, who holds a role for the type."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from carecouch.errors import CouchForbidden
from tests.helpers.provisioned import Caseload, Person
from tests.helpers.records import Write, administration, observation, refusal


def test_forged_author_is_refused(caseload: Caseload, person: Callable[..., Person],
                                  write: Write) -> None:
    nurse, colleague = person("nurse"), person("nurse")
    doc = observation(colleague.user, nurse.device)  # written by nurse, signed as colleague
    with pytest.raises(CouchForbidden) as info:
        write(nurse.db(caseload), doc, None)
    assert refusal(info.value) == "auth.author_mismatch"


def test_device_must_be_the_sessions_device(caseload: Caseload, person: Callable[..., Person],
                                            write: Write) -> None:
    nurse = person("nurse", device="tablet-1")
    doc = observation(nurse.user, "tablet-9")
    with pytest.raises(CouchForbidden) as info:
        write(nurse.db(caseload), doc, None)
    assert refusal(info.value) == "auth.device_mismatch"


def test_member_without_a_clinical_role_cannot_write(
        caseload: Caseload, person: Callable[..., Person], write: Write) -> None:
    member = person()  # caseload member, no clinical role
    doc = observation(member.user, member.device)
    with pytest.raises(CouchForbidden) as info:
        write(member.db(caseload), doc, None)
    assert refusal(info.value) == "auth.role_required"


def test_role_must_be_one_the_type_admits(caseload: Caseload, person: Callable[..., Person],
                                          write: Write) -> None:
    hca, nurse = person("hca"), person("nurse")
    write(hca.db(caseload), observation(hca.user, hca.device), None)  # HCAs record obs
    with pytest.raises(CouchForbidden) as info:  # but not medication administrations
        write(hca.db(caseload), administration(hca.user, hca.device), None)
    assert refusal(info.value) == "auth.role_required"
    write(nurse.db(caseload), administration(nurse.user, nurse.device), None)


def test_bridge_is_not_a_clinician(caseload: Caseload, bridge_account: Person,
                                   write: Write) -> None:
    # The bridge writes exclusive records' leases; it cannot record observations.
    doc = observation(bridge_account.user, bridge_account.device)
    with pytest.raises(CouchForbidden) as info:
        write(bridge_account.db(caseload), doc, None)
    assert refusal(info.value) == "auth.role_required"


def test_admin_may_write_on_behalf(caseload: Caseload, person: Callable[..., Person],
                                   write: Write) -> None:
    nurse = person("nurse")
    doc = observation(nurse.user, nurse.device)  # e.g. a data migration by IT
    write(caseload.db, doc, None)
    assert caseload.db.get(doc["_id"])["author"] == nurse.user
