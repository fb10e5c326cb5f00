"""`carecouch conflicts resolve`: every class by hand; nothing lost, nothing clobbered."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from carecouch.conflicts import apply
from carecouch.conflicts.apply import OutcomeStatus, apply_plans
from carecouch.conflicts.branches import read_conflict
from carecouch.conflicts.identity import resolver_for
from carecouch.conflicts.plan import plan_keep, plan_merge
from carecouch.couch import CouchClient, Database
from carecouch.errors import CouchForbidden, CouchUnreachable
from carecouch.records import load_registry
from tests.conflicts.support import (
    Cli,
    Factory,
    body,
    compact,
    diverged_observation,
    edit,
    exclusive,
    live,
    mergeable,
    resolutions,
)
from tests.helpers.provisioned import Caseload, Person
from tests.helpers.records import now, push, read, refusal


def resolve(cli: Cli, caseload: Caseload, doc_id: str, *args: str, **kw: Any) -> Any:
    result = cli("conflicts", "resolve", doc_id, "--caseload", caseload.id, *args, "--yes",
                 "--json", **kw)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def check_recoverable(caseload: Caseload, doc_id: str, before: dict[str, Any],
                      outcome: dict[str, Any], cli: Cli) -> None:
    """The discarded bodies survive compaction in the record, and undo restores them."""
    record = caseload.db.get(outcome["resolution"])
    discarded = {d["_rev"]: body(d) for d in record["discarded"]}
    assert {rev: body(before[rev]) for rev in discarded} == discarded
    compact(caseload.db, doc_id, next(iter(discarded)))
    record = caseload.db.get(outcome["resolution"])  # still whole after compaction
    assert {d["_rev"]: body(d) for d in record["discarded"]} == discarded
    result = cli("conflicts", "undo", outcome["resolution"], "--caseload", caseload.id,
                 "--reason", "undo check", "--yes")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    restored = sorted(json.dumps(body(d), sort_keys=True)
                      for d in live(caseload.db, doc_id).values())
    assert restored == sorted(json.dumps(body(d), sort_keys=True) for d in before.values())


def test_keep_a_mergeable_branch(caseload: Caseload, person: Factory, cli: Cli) -> None:
    a, b = person("nurse", device="tablet-a"), person("therapist", device="tablet-b")
    made = mergeable(caseload, a, b)
    before = live(caseload.db, made.doc_id)
    out = resolve(cli, caseload, made.doc_id, "--keep", made.revs[0][:10],
                  "--reason", "A's title is the agreed one")
    assert out["status"] == "resolved" and out["method"] == "keep"
    assert set(live(caseload.db, made.doc_id)) == {made.revs[0]}
    record = caseload.db.get(out["resolution"])
    assert (record["resolves"], record["record_class"], record["kept_rev"]) == (
        made.doc_id, "mergeable", made.revs[0])
    assert record["reason"] == "A's title is the agreed one" and record["author"] == "admin"
    check_recoverable(caseload, made.doc_id, before, out, cli)


def test_merge_fields_by_hand(caseload: Caseload, person: Factory, cli: Cli) -> None:
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    made = mergeable(caseload, a, b)
    before = live(caseload.db, made.doc_id)
    # The note comes from A's branch, which never had one: the merge removes it.
    out = resolve(cli, caseload, made.doc_id, "--merge", f"goals={made.revs[0]}",
                  "--merge", f"note={made.revs[0]}", "--reason", "keep the 12-week goal")
    [merged] = live(caseload.db, made.doc_id).values()
    assert merged["_rev"] == out["written_rev"]
    assert merged["title"] == "Venous ulcer, left leg"  # A's change, by stamp
    assert merged["goals"] == ["heal within 12 weeks"] and "note" not in merged  # chosen
    assert merged["changed"]["title"]["by"] == a.user
    record = caseload.db.get(out["resolution"])
    assert record["method"] == "merge" and record["written_rev"] == merged["_rev"]
    check_recoverable(caseload, made.doc_id, before, out, cli)


def test_append_only_is_kept_never_merged(caseload: Caseload, person: Factory,
                                          cli: Cli) -> None:
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    made = diverged_observation(caseload, a, b)
    before = live(caseload.db, made.doc_id)
    refused = cli("conflicts", "resolve", made.doc_id, "--caseload", caseload.id, "--merge",
                  f"pulse={made.revs[1]}", "--reason", "x", "--yes")
    assert refused.exit_code == 2 and "only mergeable records" in refused.stderr
    out = resolve(cli, caseload, made.doc_id, "--keep", made.revs[1],
                  "--reason", "the corrected pulse")
    assert live(caseload.db, made.doc_id)[made.revs[1]]["pulse"] == 92
    check_recoverable(caseload, made.doc_id, before, out, cli)


def test_exclusive_first_completion_kept_by_a_supervisor(
        caseload: Caseload, bridge_account: Person, person: Factory, cli: Cli) -> None:
    a, b = person("prescriber", device="tablet-a"), person("prescriber", device="tablet-b")
    made = exclusive(caseload, bridge_account, a, b)
    before = live(caseload.db, made.doc_id)
    shown = json.loads(cli("conflicts", "show", made.doc_id, "--caseload", caseload.id,
                           "--json").stdout)
    assert shown["decision"]["supervisory"] and shown["decision"]["proposal"] == made.revs[1]
    out = resolve(cli, caseload, made.doc_id, "--keep", shown["decision"]["proposal"],
                  "--reason", "A signed first, under a valid lease")
    [kept] = live(caseload.db, made.doc_id).values()
    assert kept["completed_by"] == a.user
    check_recoverable(caseload, made.doc_id, before, out, cli)


class _Stdin(io.RawIOBase):
    """Standard input that runs ``before`` when the command first reads the answer: the
    admin was looking at the plan while a device synced."""

    def __init__(self, before: Any, answer: bytes) -> None:
        self.before, self.answer = before, answer

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if len(buffer) == 0:  # click probes the stream with read(0) before the command runs
            return 0
        if self.before is not None:
            self.before()
            self.before = None
        n = min(len(buffer), len(self.answer))
        buffer[:n], self.answer = self.answer[:n], self.answer[n:]
        return n


def test_a_branch_that_arrives_while_the_plan_is_shown_stops_the_resolution(
        caseload: Caseload, person: Factory, cli: Cli) -> None:
    a, b, c = (person("nurse", device=f"tablet-{x}") for x in "abc")
    made = mergeable(caseload, a, b)
    ids = read(caseload.db, made.doc_id, made.revs[0])["_revisions"]["ids"]
    base = read(caseload.db, made.doc_id, f"1-{ids[1]}")  # C pulled before A and B pushed
    late: list[str] = []

    def device_c_syncs() -> None:
        late.append(push(c.db(caseload), edit(base, c, note="C's visit"), base))

    result = cli("conflicts", "resolve", made.doc_id, "--caseload", caseload.id, "--keep",
                 made.revs[1], "--reason", "x", input=_Stdin(device_c_syncs, b"y\n"))
    assert result.exit_code == 1
    assert "changed since it was shown" in result.stderr and late[0] in result.stderr
    assert set(live(caseload.db, made.doc_id)) == {*made.revs, late[0]}
    assert resolutions(caseload.db) == []


@pytest.mark.parametrize("during", ["record", "revisions"])
def test_a_branch_that_arrives_during_the_write_is_left_live(
        caseload: Caseload, person: Factory, admin: CouchClient,
        monkeypatch: pytest.MonkeyPatch, during: str) -> None:
    """B's device syncs while the resolution record, or the revisions, are being written."""
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    made = mergeable(caseload, a, b)
    registry = load_registry()
    conflict = read_conflict(caseload.db, caseload.id, made.doc_id, registry)
    plan = plan_merge(conflict, registry, {}, reason="x", resolver=resolver_for("admin"),
                      now=now())
    on_b = read(caseload.db, made.doc_id, made.revs[1])
    original = Database.bulk_docs
    pushed: list[str] = []

    def bulk_docs(self: Database, docs: list[Any], *, new_edits: bool = True) -> Any:
        if self.client is admin and new_edits == (during == "record") and not pushed:
            pushed.append("")  # the device's own push goes through this method too
            pushed[0] = push(b.db(caseload), edit(on_b, b, note="B again"), on_b)
        return original(self, docs, new_edits=new_edits)

    monkeypatch.setattr(Database, "bulk_docs", bulk_docs)
    [outcome] = apply_plans(admin, caseload.id, [plan], audit=None)
    assert outcome.status == OutcomeStatus.CHANGED and pushed[0] in outcome.message
    leaves = live(caseload.db, made.doc_id)
    assert set(leaves) == {plan.result_rev, pushed[0]}  # B's new edit was not clobbered
    assert leaves[pushed[0]]["note"] == "B again"


def test_member_without_the_resolver_role_cannot_resolve(
        caseload: Caseload, person: Factory, cli: Cli) -> None:
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    made = mergeable(caseload, a, b)
    result = cli("conflicts", "resolve", made.doc_id, "--caseload", caseload.id, "--keep",
                 made.revs[0], "--reason", "mine", "--yes", user=a.account)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert "refused to let" in result.stderr and "carecouch:resolver" in result.stderr
    assert set(live(caseload.db, made.doc_id)) == set(made.revs)
    assert resolutions(caseload.db) == []
    # The server itself refuses the deletion, whatever the client does.
    stored = read(caseload.db, made.doc_id, made.revs[1])
    with pytest.raises(CouchForbidden) as info:
        push(a.db(caseload), {"_id": made.doc_id, "_deleted": True}, stored)
    assert refusal(info.value) == "delete.forbidden"


def test_a_resolver_resolves_with_their_own_account(
        caseload: Caseload, person: Factory, cli: Cli) -> None:
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    resolver = person("carecouch:resolver", device="desk")
    made = mergeable(caseload, a, b)
    listed = cli("conflicts", "list", "--json", user=resolver.account)  # no registry access
    assert listed.exit_code == 0, listed.stderr
    assert [c["doc"] for c in json.loads(listed.stdout)["conflicts"]] == [made.doc_id]
    result = cli("conflicts", "resolve", made.doc_id, "--caseload", caseload.id, "--merge",
                 f"title={made.revs[1]}", "--reason", "B's title", "--yes",
                 user=resolver.account)
    assert result.exit_code == 0, result.stderr
    assert "carecouch_audit is for server admins only" in result.stderr
    [merged] = live(caseload.db, made.doc_id).values()
    assert (merged["author"], merged["device"]) == (resolver.user, "desk")
    [record] = resolutions(caseload.db)
    assert (record["author"], record["device"]) == (resolver.user, "desk")


def test_bad_usage_and_nothing_to_resolve(caseload: Caseload, person: Factory,
                                          cli: Cli) -> None:
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    made = mergeable(caseload, a, b)
    base = ["conflicts", "resolve", made.doc_id, "--caseload", caseload.id, "--reason", "x",
            "--yes"]
    for args, code, text in [
            ([], 2, "either --keep"),
            (["--keep", made.revs[0], "--merge", f"title={made.revs[0]}"], 2, "either --keep"),
            (["--keep", "9-nope"], 2, "is not a live revision"),
            (["--merge", "mood=" + made.revs[0]], 2, "has no field mood"),
            (["--merge", "title"], 2, "FIELD=REV")]:
        result = cli(*base, *args)
        assert result.exit_code == code, (args, result.stderr)
        assert text in result.stderr and result.stderr.startswith("error: ")
    resolve(cli, caseload, made.doc_id, "--keep", made.revs[0], "--reason", "x")
    again = cli(*base, "--keep", made.revs[0])
    assert again.exit_code == 1 and "nothing to resolve" in again.stderr
    missing = cli("conflicts", "show", "care_plan:nope", "--caseload", caseload.id)
    assert missing.exit_code == 1 and "no document care_plan:nope" in missing.stderr


def test_nothing_is_written_unless_confirmed(caseload: Caseload, person: Factory,
                                             cli: Cli) -> None:
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    made = mergeable(caseload, a, b)
    args = ["conflicts", "resolve", made.doc_id, "--caseload", caseload.id, "--keep",
            made.revs[0], "--reason", "x"]
    declined = cli(*args, input="n\n")
    assert declined.exit_code == 1 and "not confirmed" in declined.stderr
    assert f"delete {made.revs[1]}" in declined.stderr  # the plan was shown first
    dry = cli(*args, "--dry-run", "--json")
    assert json.loads(dry.stdout)["bulk_docs"]["docs"][0]["_deleted"] is True
    assert set(live(caseload.db, made.doc_id)) == set(made.revs)
    assert resolutions(caseload.db) == []
    assert cli(*args, input="y\n").exit_code == 0
    assert set(live(caseload.db, made.doc_id)) == {made.revs[0]}


def test_plans_do_not_depend_on_what_was_read_first(caseload: Caseload,
                                                    person: Factory) -> None:
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    made = mergeable(caseload, a, b)
    registry = load_registry()
    conflict = read_conflict(caseload.db, caseload.id, made.doc_id, registry)
    kept = plan_keep(conflict, made.revs[0], reason="x", resolver=resolver_for("admin"),
                     now="2026-01-01T00:00:00.000Z")
    conflict.branches.reverse()
    again = plan_keep(conflict, made.revs[0], reason="x", resolver=resolver_for("admin"),
                      now="2026-01-01T00:00:00.000Z")
    assert kept.record == again.record and kept.writes == again.writes


def test_a_run_cut_off_after_its_record_finishes_when_run_again(
        caseload: Caseload, person: Factory, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    made = mergeable(caseload, a, b)
    before = live(caseload.db, made.doc_id)

    def connection_lost(*args: Any, **kwargs: Any) -> None:
        raise CouchUnreachable("connection reset by peer")

    # The resolution record is written, then the link drops before the revisions are.
    monkeypatch.setattr(apply, "_write_revisions", connection_lost)
    args = ["conflicts", "resolve", made.doc_id, "--caseload", caseload.id, "--merge",
            f"goals={made.revs[0]}", "--reason", "keep the 12-week goal", "--yes", "--json"]
    cut = cli(*args)
    assert cut.exit_code == 1 and "connection reset" in cut.stderr
    [record] = resolutions(caseload.db)
    assert {d["_rev"]: body(d) for d in record["discarded"]} == {
        rev: body(doc) for rev, doc in before.items()}  # nothing written yet is lost
    assert set(live(caseload.db, made.doc_id)) == set(made.revs)

    monkeypatch.undo()
    again = resolve(cli, caseload, made.doc_id, *args[5:-2])
    assert again["status"] == "resolved" and again["resolution"] == record["_id"]
    assert [r["_id"] for r in resolutions(caseload.db)] == [record["_id"]]  # not a second
    assert set(live(caseload.db, made.doc_id)) == {again["written_rev"]}
