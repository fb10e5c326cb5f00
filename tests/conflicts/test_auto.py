"""`carecouch conflicts auto`: policy by class, exactly what the dry run said, deterministic."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from carecouch.conflicts.apply import OutcomeStatus, apply_plans
from carecouch.conflicts.finder import read_caseload
from carecouch.conflicts.identity import resolver_for
from carecouch.conflicts.plan import plan_auto
from carecouch.couch import CouchClient, Database, Doc
from carecouch.ids import caseload_db, member_role
from carecouch.provisioning import Provisioner
from carecouch.records import load_registry
from tests.conflicts.support import (
    Cli,
    Factory,
    body,
    compact,
    diverged_observation,
    duplicate,
    edit,
    exclusive,
    live,
    mergeable,
    resolutions,
)
from tests.helpers.fixtures import User
from tests.helpers.provisioned import Caseload, Person
from tests.helpers.records import care_plan, now, push, read


def auto(cli: Cli, *args: str) -> Any:
    result = cli("conflicts", "auto", *args, "--json")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_auto_applies_the_policy_of_each_class(
        caseload: Caseload, bridge_account: Person, person: Factory, cli: Cli) -> None:
    a, b = person("prescriber", device="tablet-a"), person("prescriber", device="tablet-b")
    merge = mergeable(caseload, a, b)
    dup = duplicate(caseload, a)
    diverged = diverged_observation(caseload, a, b)
    race = exclusive(caseload, bridge_account, a, b)
    before = {d.doc_id: live(caseload.db, d.doc_id) for d in (merge, dup, diverged, race)}

    dry = auto(cli, "--caseload", caseload.id, "--dry-run")
    assert resolutions(caseload.db) == []
    assert {d: set(live(caseload.db, d)) for d in before} == {
        d: set(leaves) for d, leaves in before.items()}  # the dry run wrote nothing
    planned = {p["doc"]: p for p in dry["plans"]}
    assert {d: p["method"] for d, p in planned.items()} == {
        merge.doc_id: "auto-merge", dup.doc_id: "auto-duplicate"}
    review = {r["doc"]: r for r in dry["review"]}
    assert set(review) == {diverged.doc_id, race.doc_id}
    assert review[race.doc_id]["action"] == "supervisory review"
    assert review[race.doc_id]["proposal"] == race.revs[1]  # A completed first

    done = auto(cli, "--caseload", caseload.id, "--yes")
    assert {o["doc"]: o["status"] for o in done["outcomes"]} == {
        merge.doc_id: "resolved", dup.doc_id: "resolved"}
    # Exactly what the dry run printed was written.
    [merged] = live(caseload.db, merge.doc_id).values()
    plan = planned[merge.doc_id]
    assert merged == {k: v for k, v in plan["bulk_docs"]["docs"][0].items()
                      if k != "_revisions"}
    assert {r["_id"] for r in resolutions(caseload.db)} == {
        p["resolution"]["_id"] for p in dry["plans"]}
    assert merged["title"] == "Venous ulcer, left leg" and merged["note"] == (
        "compression tolerated")  # A's and B's changes both kept
    assert set(live(caseload.db, dup.doc_id)) == {max(dup.revs, key=lambda r: r.split("-"))}
    assert set(live(caseload.db, diverged.doc_id)) == set(diverged.revs)
    assert set(live(caseload.db, race.doc_id)) == set(race.revs)  # never auto-resolved

    # After compaction every discarded body is still in the resolution records...
    compact(caseload.db, merge.doc_id, merge.revs[1])
    for doc_id in (merge.doc_id, dup.doc_id):
        [record] = [r for r in resolutions(caseload.db) if r["resolves"] == doc_id]
        for kept in record["discarded"]:
            assert body(kept) == body(before[doc_id][kept["_rev"]])
    # ...and undo puts both of the merge's branches back as they were.
    [record] = [r for r in resolutions(caseload.db) if r["resolves"] == merge.doc_id]
    result = cli("conflicts", "undo", record["_id"], "--caseload", caseload.id, "--reason",
                 "the merge lost context", "--yes")
    assert result.exit_code == 0, result.stderr
    assert sorted(json.dumps(body(d), sort_keys=True)
                  for d in live(caseload.db, merge.doc_id).values()) == sorted(
        json.dumps(body(d), sort_keys=True) for d in before[merge.doc_id].values())


def _push(db: Database, doc: Doc, parent: Doc | None, rev_hash: str) -> Doc:
    """A device's push with a given revision id, so two servers receive the same revision."""
    start = 1 if parent is None else parent["_revisions"]["start"] + 1
    ids = [rev_hash, *(parent["_revisions"]["ids"] if parent else [])]
    sent = {**{k: v for k, v in doc.items() if not k.startswith("_r")},
            "_rev": f"{start}-{rev_hash}", "_revisions": {"start": start, "ids": ids}}
    assert db.bulk_docs([sent], new_edits=False) == []
    return sent


def test_auto_merge_is_the_same_on_two_servers(
        admin: CouchClient, caseload_ids: Callable[[], str],
        make_user: Callable[..., User], cli: Cli) -> None:
    """The same conflict, held by two databases that received the branches in a different
    order, merges to the same body, the same revision id and the same resolution record id.
    Both devices changed the title at the same instant: the tie goes to the user name."""
    ids = [caseload_ids(), caseload_ids()]
    for cid in ids:
        Provisioner(admin).create(cid, name="determinism")
    people = []
    for name, device in (("ana", "tablet-a"), ("ben", "tablet-b")):
        user = f"{name}-{ids[0]}"
        account = make_user(["clinical:nurse", *map(member_role, ids)], name=f"{user}~{device}")
        people.append((user, device, account))
    (ana, ana_dev, ana_acc), (ben, ben_dev, ben_acc) = people
    at = "2026-03-01T10:00:00.000Z"
    plan = {**care_plan(ana, ana_dev), "at": at}
    plan["changed"] = {k: {"by": ana, "at": at} for k in plan["changed"]}

    def edit(doc: Doc, user: str, device: str, when: str, **fields: Any) -> Doc:
        stamps = {**doc["changed"], **{k: {"by": user, "at": when} for k in fields}}
        return {**doc, **fields, "author": user, "device": device, "at": when,
                "changed": stamps}

    same_instant = "2026-03-01T11:00:00Z"  # the same time as "...11:00:00.000Z"
    for order, cid in ((1, ids[0]), (-1, ids[1])):
        dbs = {a.name: a.client.db(caseload_db(cid)) for a in (ana_acc, ben_acc)}
        base = _push(dbs[ana_acc.name], plan, None, "a" * 32)
        edits = [(ana_acc, edit(base, ana, ana_dev, "2026-03-01T11:00:00.000Z",
                                title="Ana's title", note="ana"), "b" * 32),
                 (ben_acc, edit(base, ben, ben_dev, same_instant, title="Ben's title",
                                goals=["walk daily"]), "c" * 32)]
        for account, doc, rev_hash in edits[::order]:
            _push(dbs[account.name], doc, base, rev_hash)
    done = auto(cli, "--caseload", ids[0], "--caseload", ids[1], "--yes")
    assert [o["status"] for o in done["outcomes"]] == ["resolved", "resolved"]
    first, second = (live(admin.db(caseload_db(cid)), plan["_id"]) for cid in ids)
    assert first == second and len(first) == 1
    [merged] = first.values()
    assert merged["title"] == "Ben's title"  # same instant: "ben" > "ana"
    assert (merged["note"], merged["goals"]) == ("ana", ["walk daily"])
    assert merged["at"] == same_instant and merged["author"] == "admin"
    assert {o["resolution"] for o in done["outcomes"]} == {done["outcomes"][0]["resolution"]}
    records = [admin.db(caseload_db(cid)).get(done["outcomes"][0]["resolution"]) for cid in ids]
    assert records[0]["discarded"] == records[1]["discarded"]
    owner, suffix = records[0]["_id"].split(":", 1)[1].rsplit(":", 1)
    assert owner == "admin" and uuid.UUID(suffix)  # the resolver's account owns it


def test_a_record_that_changes_between_reading_and_writing_is_left_alone(
        admin: CouchClient, caseload: Caseload, person: Factory) -> None:
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    first, second = mergeable(caseload, a, b), mergeable(caseload, a, b)
    registry = load_registry()
    plans = [plan_auto(c, registry, resolver=resolver_for("admin"), now=now())
             for c in read_caseload(admin, caseload.id, registry, for_writing=True)]
    on_b = read(caseload.db, second.doc_id, second.revs[1])
    late = push(b.db(caseload), edit(on_b, b, note="B again"), on_b)  # after the read
    outcomes = {o.plan.doc_id: o for o in apply_plans(admin, caseload.id,
                                                      [p for p in plans if p], audit=None)}
    assert outcomes[first.doc_id].status == OutcomeStatus.RESOLVED
    assert outcomes[second.doc_id].status == OutcomeStatus.CHANGED
    assert not outcomes[second.doc_id].written
    assert late in outcomes[second.doc_id].message
    assert set(live(caseload.db, second.doc_id)) == {second.revs[0], late}
    assert [r["resolves"] for r in resolutions(caseload.db)] == [first.doc_id]
