"""The one race the lease protocol cannot prevent, and what the server does with it.

A's lease lets A complete the sign-off offline. The lease expires before A is back online;
the bridge grants it to B, who completes too. When A finally syncs, A's completion was made
under a then-valid lease on a revision the server still holds, so CouchDB accepts it as a
second branch: the server holds a conflict for supervisory review, and neither clinician's
completion is lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from carecouch.couch import Doc
from carecouch.errors import CouchForbidden
from tests.helpers.provisioned import Caseload, Person
from tests.helpers.records import completion, lease, leased_order, now, push, put, read, refusal


def test_two_completions_become_a_conflict_and_nothing_is_lost(
        caseload: Caseload, bridge_account: Person, person: Callable[..., Person]) -> None:
    a = person("prescriber", device="tablet-a")
    b = person("prescriber", device="tablet-b")
    # A is granted a 30-minute lease, pulls the record (revision 2) and goes offline.
    on_a = leased_order(caseload, bridge_account, a, minutes=30, start=-90)
    # A signs offline, 70 minutes ago, inside A's lease; A's device keeps revision 3a.
    a_done = completion(on_a, a, completed_at=now(-70))
    # The lease expired; the bridge grants the record to B, who pulls it and signs online.
    put(bridge_account.db(caseload), {**on_a, "lease": lease(b.user, b.device)}, on_a)
    on_b = read(caseload.db, on_a["_id"])
    put(b.db(caseload), completion(on_b, b), on_b)
    b_rev = read(caseload.db, on_a["_id"])["_rev"]
    # A comes back online and pushes revision 3a on top of revision 2.
    a_rev = push(a.db(caseload), a_done, on_a)

    doc = caseload.db.get(on_a["_id"], conflicts=True)
    assert doc["_rev"] == b_rev  # the longer branch wins, deterministically
    assert doc["_conflicts"] == [a_rev]
    leaves = {leaf["ok"]["_rev"]: leaf["ok"]
              for leaf in caseload.db.open_revs(on_a["_id"], "all")}
    assert {rev: (d["status"], d["completed_by"]) for rev, d in leaves.items()} == {
        b_rev: ("signed", b.user), a_rev: ("signed", a.user)}
    # The conflicts view lists it, so `carecouch conflicts list` will flag it for review.
    rows = caseload.db.view("carecouch", "conflicts", reduce=False)["rows"]
    assert [row["id"] for row in rows] == [on_a["_id"]]


def completed_elsewhere(caseload: Caseload, bridge_account: Person, holder: Person
                        ) -> tuple[Doc, Doc]:
    """A leased order (revision 2, stored here) and the holder's completion of it (revision 3),
    which exists only on the holder's device and on the other copies of a cluster: this
    database plays the copy that has not received it yet."""
    order = leased_order(caseload, bridge_account, holder)
    done = completion(order, holder)
    done_hash = uuid.uuid4().hex
    done["_rev"] = f"3-{done_hash}"
    done["_revisions"] = {"start": 3, "ids": [done_hash, *order["_revisions"]["ids"]]}
    return order, done


def test_a_copy_without_the_completion_refuses_edits_made_on_it(
        caseload: Caseload, bridge_account: Person, person: Callable[..., Person]) -> None:
    """On a cluster a write returns once two of three copies hold it; the third may receive
    it a moment later. An edit of the completed order pushed meanwhile is judged by that copy
    against the nearest ancestor it stores (the open, leased revision 2), where "declined" is a
    valid completion by the holder. Accepted there, it would stay although the cluster answered
    403 (the other copies refused it: exclusive.terminal) and would reach them by internal
    replication, which does not validate: a signed order turned into a declined one. The rules
    refuse any edit whose parent the copy does not hold, so every copy refuses it."""
    gp = person("prescriber")
    order, done = completed_elsewhere(caseload, bridge_account, gp)
    changed = ({**done, "status": "declined"}, {**done, "note": "changed my mind"})
    for writer, doc in ((gp, changed[0]), (gp, changed[1]),
                        (bridge_account, {**done, "lease": lease(gp.user, gp.device)})):
        with pytest.raises(CouchForbidden) as info:
            push(writer.db(caseload), doc, done)
        assert refusal(info.value) == "exclusive.reread"
    stored = caseload.db.get(order["_id"], conflicts=True)
    assert (stored["_rev"], stored["status"]) == (order["_rev"], "open")
    assert "_conflicts" not in stored
    # The holder's completion itself is based on revision 2, which every copy holds.
    assert push(gp.db(caseload), completion(order, gp), order)
