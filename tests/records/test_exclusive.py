"""Exclusive records: created and leased by the bridge, completed only by the lease holder."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from carecouch.couch import doc_path
from carecouch.errors import CouchForbidden
from tests.helpers.provisioned import Caseload, Person
from tests.helpers.records import (
    Write,
    completion,
    lease,
    leased_order,
    now,
    order_signoff,
    push,
    put,
    read,
    refusal,
    until_agreed,
)
from tests.helpers.waiting import wait_until


def test_holder_completes_within_the_lease(caseload: Caseload, bridge_account: Person,
                                           person: Callable[..., Person],
                                           write: Write) -> None:
    gp = person("prescriber")
    order = leased_order(caseload, bridge_account, gp)
    write(gp.db(caseload), completion(order, gp), order)
    done = read(caseload.db, order["_id"])
    assert (done["status"], done["completed_by"]) == ("signed", gp.user)


def test_only_the_bridge_creates(caseload: Caseload, person: Callable[..., Person],
                                 write: Write) -> None:
    gp = person("prescriber")
    with pytest.raises(CouchForbidden) as info:
        write(gp.db(caseload), order_signoff(gp.user, author=gp.user, device=gp.device), None)
    assert refusal(info.value) == "exclusive.create_forbidden"


def test_bridge_cannot_create_it_completed(caseload: Caseload, bridge_account: Person,
                                           write: Write) -> None:
    order = order_signoff(bridge_account.user, status="signed", completed_by="x",
                          completed_at=now())
    with pytest.raises(CouchForbidden) as info:
        write(bridge_account.db(caseload), order, None)
    assert refusal(info.value) == "exclusive.bad_create"


def test_bridge_changes_only_the_lease(caseload: Caseload, bridge_account: Person,
                                       person: Callable[..., Person], write: Write) -> None:
    gp = person("prescriber")
    order = leased_order(caseload, bridge_account, gp)
    with pytest.raises(CouchForbidden) as info:
        write(bridge_account.db(caseload), {**order, "description": "Stop amoxicillin"}, order)
    assert refusal(info.value) == "exclusive.bridge_content"
    with pytest.raises(CouchForbidden) as info:
        write(bridge_account.db(caseload), completion(order, gp), order)
    assert refusal(info.value) == "exclusive.bridge_content"


@pytest.mark.parametrize("broken", [
    {"holder": ""}, {"grant": None}, {"expires_at": "tomorrow"},
    {"granted_at": "2026-11-22T12:00:00Z", "expires_at": "2026-11-22T11:00:00Z"},
], ids=["no holder", "no grant", "bad expiry", "expires before granted"])
def test_malformed_lease_is_refused(caseload: Caseload, bridge_account: Person,
                                    person: Callable[..., Person], write: Write,
                                    broken: dict[str, Any]) -> None:
    gp = person("prescriber")
    order = leased_order(caseload, bridge_account, gp)
    bad = {**order["lease"], **broken}
    with pytest.raises(CouchForbidden) as info:
        write(bridge_account.db(caseload), {**order, "lease": bad}, order)
    assert refusal(info.value) == "exclusive.bad_lease"


def test_someone_else_cannot_complete(caseload: Caseload, bridge_account: Person,
                                      person: Callable[..., Person], write: Write) -> None:
    gp, other = person("prescriber"), person("prescriber")
    order = leased_order(caseload, bridge_account, gp)
    with pytest.raises(CouchForbidden) as info:
        write(other.db(caseload), completion(order, other), order)
    assert refusal(info.value) == "exclusive.not_holder"


def test_holder_on_another_device_cannot_complete(caseload: Caseload, bridge_account: Person,
                                                  person: Callable[..., Person],
                                                  write: Write) -> None:
    gp = person("prescriber", device="tablet-1")
    order = leased_order(caseload, bridge_account, gp)
    same_gp_other_tablet = person("prescriber", user=gp.user, device="tablet-2")
    with pytest.raises(CouchForbidden) as info:
        write(same_gp_other_tablet.db(caseload), completion(order, same_gp_other_tablet), order)
    assert refusal(info.value) == "exclusive.not_holder"


def test_forged_lease_is_refused(caseload: Caseload, bridge_account: Person,
                                 person: Callable[..., Person], write: Write) -> None:
    """A device writes itself a lease: on an unleased record, and over someone else's."""
    gp, other = person("prescriber"), person("prescriber")
    order = order_signoff(bridge_account.user)
    put(bridge_account.db(caseload), order)
    unleased = read(caseload.db, order["_id"])
    mine = completion({**unleased, "lease": lease(other.user, other.device)}, other)
    with pytest.raises(CouchForbidden) as info:
        write(other.db(caseload), mine, unleased)
    assert refusal(info.value) == "exclusive.not_holder"

    leased = leased_order(caseload, bridge_account, gp)
    extended = {**leased["lease"], "expires_at": now(60 * 24 * 30)}
    with pytest.raises(CouchForbidden) as info:
        write(gp.db(caseload), completion({**leased, "lease": extended}, gp), leased)
    assert refusal(info.value) == "exclusive.lease_changed"


def test_completion_time_must_fall_within_the_lease(caseload: Caseload, bridge_account: Person,
                                                    person: Callable[..., Person],
                                                    write: Write) -> None:
    gp = person("prescriber")
    order = leased_order(caseload, bridge_account, gp, minutes=30, start=-120)  # expired 90 min ago
    with pytest.raises(CouchForbidden) as info:
        write(gp.db(caseload), completion(order, gp), order)
    assert refusal(info.value) == "exclusive.outside_lease"
    on_time = completion(order, gp, completed_at=now(-100))
    write(gp.db(caseload), on_time, order)


@pytest.mark.parametrize(("change", "code"), [
    ({"completed_by": "someone-else"}, "exclusive.bad_completion"),
    ({"completed_at": None}, "exclusive.bad_completion"),
    ({"status": "open"}, "exclusive.bad_completion"),
    ({"status": "witnessed"}, "schema.not_allowed"),
])
def test_completion_must_be_well_formed(caseload: Caseload, bridge_account: Person,
                                        person: Callable[..., Person], write: Write,
                                        change: dict[str, Any], code: str) -> None:
    gp = person("prescriber")
    order = leased_order(caseload, bridge_account, gp)
    doc = completion(order, gp)
    doc.update(change)
    doc = {k: v for k, v in doc.items() if v is not None}
    # Written right after the lease: on a cluster a copy still without it answers 409 (or,
    # pushed, exclusive.reread) first; `write` retries as the device does, and the answer the
    # copies agree on is the rule's, as on a single node.
    with pytest.raises(CouchForbidden) as info:
        write(gp.db(caseload), doc, order)
    assert refusal(info.value) == code
    assert read(caseload.db, order["_id"])["_rev"] == order["_rev"]  # stored nowhere


def test_holder_may_edit_before_completing(caseload: Caseload, bridge_account: Person,
                                           person: Callable[..., Person], write: Write) -> None:
    gp = person("prescriber")
    order = leased_order(caseload, bridge_account, gp)
    write(gp.db(caseload), {**order, "note": "checked allergies", "author": gp.user,
                            "device": gp.device}, order)
    assert read(caseload.db, order["_id"])["status"] == "open"


def test_completed_sign_off_is_final(caseload: Caseload, bridge_account: Person,
                                     person: Callable[..., Person], write: Write) -> None:
    gp = person("prescriber")
    order = leased_order(caseload, bridge_account, gp)
    write(gp.db(caseload), completion(order, gp), order)
    done = read(caseload.db, order["_id"])
    # On a cluster a copy may not hold the completion yet: it answers 409 to a PUT naming
    # it, and to a push made on it exclusive.reread (it refuses an edit whose parent it does
    # not hold, rather than judge it against the open revision before: test_race.py). Both
    # are retried as the device and the bridge retry them (`write`); the answer the copies
    # agree on is terminal, as on a single node, and no copy keeps any of these edits.
    for writer, doc in ((gp, {**done, "status": "declined"}),
                        (gp, {**done, "note": "changed my mind"}),
                        (bridge_account, {**done, "lease": lease(gp.user, gp.device)})):
        with pytest.raises(CouchForbidden) as info:
            write(writer.db(caseload), doc, done)
        assert refusal(info.value) == "exclusive.terminal"
    assert read(caseload.db, order["_id"])["_rev"] == done["_rev"]
    assert "_conflicts" not in caseload.db.get(order["_id"], conflicts=True)


def test_completion_after_compaction_removed_its_base_must_reread(
        caseload: Caseload, bridge_account: Person, person: Callable[..., Person]) -> None:
    """The device completes on revision 2 (its lease), but meanwhile the bridge renewed the
    lease (revision 3) and compaction removed revision 2's body: validation gets a null
    oldDoc and tells the device to re-read and retry."""
    gp = person("prescriber")
    order = leased_order(caseload, bridge_account, gp)  # revision 2, as the device pulled it
    renewed = {**order["lease"], "expires_at": now(120)}
    put(bridge_account.db(caseload), {**order, "lease": renewed}, order)
    caseload.db.compact()
    wait_for_compaction(caseload, order["_id"], order["_rev"])
    with pytest.raises(CouchForbidden) as info:
        push(gp.db(caseload), completion(order, gp), order)
    assert refusal(info.value) == "exclusive.reread"
    assert read(caseload.db, order["_id"])["status"] == "open"


def test_made_up_history_cannot_skip_the_lease_check(
        caseload: Caseload, bridge_account: Person, person: Callable[..., Person]) -> None:
    """History [3-new, 2-invented, 1-stored (no lease)]: compared with 1, so not the holder;
    and a history of nothing stored is refused with re-read."""
    gp = person("prescriber")
    order = order_signoff(bridge_account.user)
    put(bridge_account.db(caseload), order)
    created = read(caseload.db, order["_id"])
    forged = completion({**created, "lease": lease(gp.user, gp.device)}, gp)
    with pytest.raises(CouchForbidden) as info:  # retried while a copy lacks revision 1
        until_agreed(caseload.db.copies(), lambda: push(
            gp.db(caseload), forged, None,
            history=[uuid.uuid4().hex, *created["_revisions"]["ids"]]))
    assert refusal(info.value) == "exclusive.not_holder"
    with pytest.raises(CouchForbidden) as info:
        push(gp.db(caseload), forged, None, history=[uuid.uuid4().hex, uuid.uuid4().hex])
    assert refusal(info.value) == "exclusive.reread"


def wait_for_compaction(caseload: Caseload, doc_id: str, rev: str) -> None:
    """Compaction runs in the background: wait until the non-leaf body is gone."""
    wait_until(lambda: caseload.db.client.request(
        "GET", f"{caseload.db.path}/{doc_path(doc_id)}", params={"rev": rev},
        ok=(404,)).status_code == 404, timeout=30, interval=0.2,
        what=f"compaction removed {doc_id}@{rev}")


def add_review_step(registry: dict[str, Any]) -> None:
    order = registry["types"]["order_signoff"]
    order["fields"]["status"]["enum"].append("in_review")
    order["transitions"] = {"open": ["in_review", "signed"], "in_review": ["signed", "declined"]}


@pytest.mark.registry_change.with_args(add_review_step)
def test_status_moves_only_along_declared_transitions(
        caseload: Caseload, bridge_account: Person, person: Callable[..., Person],
        write: Write) -> None:
    gp = person("prescriber")
    order = leased_order(caseload, bridge_account, gp)
    with pytest.raises(CouchForbidden) as info:  # declined is reached only via in_review
        write(gp.db(caseload), completion(order, gp, status="declined"), order)
    assert refusal(info.value) == "exclusive.bad_transition"
    write(gp.db(caseload), {**order, "status": "in_review", "author": gp.user,
                            "device": gp.device}, order)
    reviewing = read(caseload.db, order["_id"])
    write(gp.db(caseload), completion(reviewing, gp, status="declined"), reviewing)
    assert read(caseload.db, order["_id"])["status"] == "declined"
