"""`carecouch conflicts list` and `show`: what a clinical admin sees before resolving."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from carecouch.couch import CouchClient
from carecouch.ids import caseload_db
from carecouch.provisioning import Provisioner
from tests.conflicts.support import (
    Cli,
    Factory,
    compact,
    completed_beside_a_regrant,
    diverged_observation,
    duplicate,
    exclusive,
    live,
    mergeable,
)
from tests.helpers.provisioned import Caseload, Person
from tests.helpers.records import completion, push


def test_list_across_caseloads_exclusive_first(
        admin: CouchClient, caseload: Caseload, bridge_account: Person, person: Factory,
        caseload_ids: Callable[[], str], cli: Cli) -> None:
    a, b = person("prescriber", device="tablet-a"), person("prescriber", device="tablet-b")
    merge = mergeable(caseload, a, b)
    dup = duplicate(caseload, a)
    diverged = diverged_observation(caseload, a, b)
    race = exclusive(caseload, bridge_account, a, b)
    quiet = caseload_ids()  # a second caseload with no conflict at all
    Provisioner(admin).create(quiet, name="quiet")

    result = cli("conflicts", "list", "--caseload", caseload.id, "--caseload", quiet, "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    rows = out["conflicts"]
    assert [r["doc"] for r in rows][0] == race.doc_id  # exclusive first
    assert [r["doc"] for r in rows][1] == diverged.doc_id  # then what needs review
    by_doc = {r["doc"]: r for r in rows}
    assert set(by_doc) == {merge.doc_id, dup.doc_id, diverged.doc_id, race.doc_id}
    assert {d: (r["class"], r["needs_review"], r["action"]) for d, r in by_doc.items()} == {
        race.doc_id: ("exclusive", True, "supervisory review"),
        diverged.doc_id: ("append-only", True, "review"),
        dup.doc_id: ("append-only", False, "auto: duplicate"),
        merge.doc_id: ("mergeable", False, "auto: merge")}
    assert all(r["branches"] == 2 and r["subject"] == "patient-001" for r in rows)
    assert all(0 <= r["age_seconds"] < 600 for r in rows)
    assert out["counts"] == {caseload.id: {"exclusive": 1, "append-only": 2, "mergeable": 1}}
    assert (out["total"], out["needs_review"], out["errors"]) == (4, 2, {})

    table = cli("conflicts", "list", "--caseload", caseload.id)
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split()[:4] == ["CASELOAD", "DOCUMENT", "TYPE", "CLASS"]
    assert race.doc_id in lines[1] and "supervisory review" in lines[1]
    assert "4 conflicted documents, 2 need review" in table.stdout
    # By default: every active caseload in the registry.
    everything = json.loads(cli("conflicts", "list", "--json", "--quiet").stdout)
    assert {merge.doc_id, race.doc_id} <= {r["doc"] for r in everything["conflicts"]}


def test_list_names_a_caseload_whose_view_is_outdated(
        admin: CouchClient, caseload: Caseload, person: Factory, cli: Cli) -> None:
    duplicate(caseload, person("nurse"))
    db = admin.db(caseload_db(caseload.id))
    ddoc = db.get("_design/carecouch")
    ddoc["views"]["conflicts"]["map"] = (
        "function (doc) { if (doc._conflicts) { emit([doc.type, doc._id], 1); } }")
    db.put(ddoc)
    result = cli("conflicts", "list", "--caseload", caseload.id)
    assert result.exit_code == 1
    assert "outdated conflicts view" in result.stderr and "caseload apply" in result.stderr


def test_show_diffs_branches_and_their_ancestor(caseload: Caseload, person: Factory,
                                                cli: Cli) -> None:
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    made = mergeable(caseload, a, b)
    result = cli("conflicts", "show", made.doc_id, "--caseload", caseload.id, "--json")
    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert sorted(shown["revs"]) == sorted(made.revs) and shown["class"] == "mergeable"
    assert shown["ancestor"]["held"] and shown["ancestor"]["rev"].startswith("1-")
    rows = {(r["section"], r["name"]): r for r in shown["diff"]}
    assert rows[("field", "title")]["differs"] and rows[("field", "goals")]["differs"]
    assert rows[("field", "title")]["ancestor"] == "Venous leg ulcer"
    assert not rows[("envelope", "clock_offset_ms")]["differs"]
    assert {v for v in rows[("envelope", "device")]["values"]} == {"tablet-a", "tablet-b"}
    at = rows[("envelope", "at")]["values"][0]
    server = rows[("envelope", "server time")]["values"][0]
    assert server < at  # a clock 420 ms ahead of the server
    assert rows[("stamp", "note")]["differs"]
    assert shown["decision"]["action"] == "auto: merge"

    text = cli("conflicts", "show", made.doc_id, "--caseload", caseload.id).stdout
    assert "common ancestor: 1-" in text and "(winner)" in text and "* " in text
    compact(caseload.db, made.doc_id, shown["ancestor"]["rev"])
    after = json.loads(cli("conflicts", "show", made.doc_id, "--caseload", caseload.id,
                           "--json").stdout)
    assert after["ancestor"] == {"rev": shown["ancestor"]["rev"], "body": None, "held": False}
    text = cli("conflicts", "show", made.doc_id, "--caseload", caseload.id).stdout
    assert "no longer held" in text


def test_show_an_exclusive_record_with_its_leases(
        caseload: Caseload, bridge_account: Person, person: Factory, cli: Cli) -> None:
    a, b = person("prescriber", device="tablet-a"), person("prescriber", device="tablet-b")
    race = exclusive(caseload, bridge_account, a, b)
    shown = json.loads(cli("conflicts", "show", race.doc_id, "--caseload", caseload.id,
                           "--json").stdout)
    rows = {(r["section"], r["name"]): r for r in shown["diff"]}
    holders = dict(zip(shown["revs"], rows[("lease", "holder")]["values"], strict=True))
    assert holders == {race.revs[0]: b.user, race.revs[1]: a.user}
    assert rows[("field", "completed_by")]["differs"]
    assert shown["decision"]["supervisory"] and shown["decision"]["proposal"] == race.revs[1]
    text = cli("conflicts", "show", race.doc_id, "--caseload", caseload.id).stdout
    assert "lease" in text and "first completion under a then-valid lease" in text


def test_a_completion_beside_a_leased_branch_and_a_second_completion_go_to_a_supervisor(
        caseload: Caseload, bridge_account: Person, person: Factory, cli: Cli) -> None:
    a, b = person("prescriber", device="tablet-a"), person("prescriber", device="tablet-b")
    made, leased = completed_beside_a_regrant(caseload, bridge_account, a, b)

    def listed() -> dict[str, Any]:
        result = cli("conflicts", "list", "--caseload", caseload.id, "--json")
        assert result.exit_code == 0, result.stderr
        (row,) = json.loads(result.stdout)["conflicts"]
        assert row["doc"] == made.doc_id
        assert (row["class"], row["needs_review"], row["supervisory"], row["action"]) == (
            "exclusive", True, True, "supervisory review")
        return dict(row)

    row = listed()
    assert f"beside a branch that still carries a lease ({b.user} until" in row["reason"]
    assert row["proposal"] == made.revs[0]  # A's completion
    # B's device holds the re-granted branch and a token for it: its completion, based on
    # that branch, is judged against B's lease there and stored as a second completion.
    b_rev = push(b.db(caseload), completion(leased, b), leased)
    row = listed()
    assert row["reason"].startswith(f"exclusive record, completed 2 times ({a.user} at ")
    assert "first completion under a then-valid lease wins" in row["reason"]
    assert row["proposal"] == made.revs[0] and set(row["revs"]) == {made.revs[0], b_rev}
    # Never resolved automatically: `auto` writes nothing for it, and nothing is lost.
    done = json.loads(cli("conflicts", "auto", "--caseload", caseload.id, "--yes",
                          "--json").stdout)
    assert done["outcomes"] == [] and [r["doc"] for r in done["review"]] == [made.doc_id]
    assert set(live(caseload.db, made.doc_id)) == {made.revs[0], b_rev}
    shown = json.loads(cli("conflicts", "show", made.doc_id, "--caseload", caseload.id,
                           "--json").stdout)
    assert shown["decision"]["supervisory"] and shown["decision"]["proposal"] == made.revs[0]
