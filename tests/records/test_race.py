"""The one race the lease protocol cannot prevent, and what the server does with it.

A's lease lets A complete the sign-off offline. The lease expires before A is back online;
the bridge grants it to B, who completes too. When A finally syncs, A's completion was made
under a then-valid lease on a revision the server still holds, so CouchDB accepts it as a
second branch: the server holds a conflict for supervisory review, and neither clinician's
completion is lost.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.helpers.records import lease, now, push, put, read
from tests.records.conftest import Caseload, Person
from tests.records.test_exclusive import completion, leased_order


def test_two_completions_become_a_conflict_and_nothing_is_lost(
        caseload: Caseload, bridge: Person, person: Callable[..., Person]) -> None:
    a = person("prescriber", device="tablet-a")
    b = person("prescriber", device="tablet-b")
    # A is granted a 30-minute lease, pulls the record (revision 2) and goes offline.
    on_a = leased_order(caseload, bridge, a, minutes=30, start=-90)
    # A signs offline, 70 minutes ago, inside A's lease; A's device keeps revision 3a.
    a_done = completion(on_a, a, completed_at=now(-70))
    # The lease expired; the bridge grants the record to B, who pulls it and signs online.
    put(bridge.db(caseload), {**on_a, "lease": lease(b.user, b.device)}, on_a)
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
