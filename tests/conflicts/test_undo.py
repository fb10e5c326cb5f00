"""`carecouch conflicts undo`: restores what a resolution discarded, and nothing else."""

from __future__ import annotations

import json

import pytest

from carecouch.couch import Database, Doc
from carecouch.errors import CouchUnreachable
from carecouch.revs import rev_key
from tests.conflicts.support import (
    Cli,
    Factory,
    bodies,
    body,
    edit,
    live,
    mergeable,
    merged_by_hand,
    resolutions,
)
from tests.helpers.provisioned import Caseload
from tests.helpers.records import put, read


def test_undo_once_then_nothing_more(caseload: Caseload, person: Factory, cli: Cli) -> None:
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    made = mergeable(caseload, a, b)
    before = live(caseload.db, made.doc_id)
    kept = cli("conflicts", "resolve", made.doc_id, "--caseload", caseload.id, "--keep",
               made.revs[0], "--reason", "x", "--yes", "--json")
    resolution = json.loads(kept.stdout)["resolution"]
    undo = ["conflicts", "undo", resolution, "--caseload", caseload.id, "--reason",
            "wrong branch kept"]
    dry = cli(*undo, "--dry-run", "--json")
    assert json.loads(dry.stdout)["restored_revs"] == [made.revs[1]]
    assert set(live(caseload.db, made.doc_id)) == {made.revs[0]}  # the dry run wrote nothing
    done = cli(*undo, "--yes", "--json")
    assert done.exit_code == 0, done.stderr
    record = json.loads(done.stdout)["resolution"]
    assert (record["method"], record["undoes"], record["discarded"]) == ("undo", resolution, [])
    leaves = live(caseload.db, made.doc_id)
    assert made.revs[0] in leaves and len(leaves) == 2  # conflicted again, as before
    assert bodies(leaves) == bodies(before)
    again = cli(*undo, "--yes")
    assert again.exit_code == 0 and "nothing to undo" in again.stdout
    assert len(resolutions(caseload.db)) == 2
    of_undo = cli("conflicts", "undo", record["_id"], "--caseload", caseload.id,
                  "--reason", "x", "--yes")
    assert of_undo.exit_code == 1 and "is itself an undo" in of_undo.stderr


def test_undo_leaves_an_edit_made_after_the_merge(caseload: Caseload, person: Factory,
                                                  cli: Cli) -> None:
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    made = mergeable(caseload, a, b)
    before, resolution = merged_by_hand(cli, caseload, made)
    current = read(caseload.db, made.doc_id)
    put(a.db(caseload), edit(current, a, note="seen after the merge"), current)
    edited = read(caseload.db, made.doc_id)["_rev"]
    result = cli("conflicts", "undo", resolution, "--caseload", caseload.id, "--reason", "x",
                 "--yes")
    assert result.exit_code == 0, result.stderr
    assert "edited after the resolution" in result.stderr
    leaves = live(caseload.db, made.doc_id)
    assert leaves[edited]["note"] == "seen after the merge"  # not discarded
    # The branch the merge was not written on comes back; the one it was written on stays
    # history (its body is in the resolution record).
    [restored] = [doc for rev, doc in leaves.items() if rev != edited]
    other = min(before, key=lambda rev: rev_key(rev))  # CouchDB's loser: not merged onto
    assert body(restored) == body(before[other])


def test_only_a_resolver_undoes(caseload: Caseload, person: Factory, cli: Cli) -> None:
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    made = mergeable(caseload, a, b)
    kept = cli("conflicts", "resolve", made.doc_id, "--caseload", caseload.id, "--keep",
               made.revs[0], "--reason", "x", "--yes", "--json")
    resolution = json.loads(kept.stdout)["resolution"]
    result = cli("conflicts", "undo", resolution, "--caseload", caseload.id, "--reason", "x",
                 "--yes", user=b.account)
    assert result.exit_code == 1 and "carecouch:resolver" in result.stderr
    assert set(live(caseload.db, made.doc_id)) == {made.revs[0]}


def test_an_undo_cut_off_between_its_steps_finishes_when_run_again(
        caseload: Caseload, person: Factory, cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    made = mergeable(caseload, a, b)
    before, resolution = merged_by_hand(cli, caseload, made)
    original = Database.bulk_docs
    replicated: list[int] = []

    def bulk_docs(self: Database, docs: list[Doc], *, new_edits: bool = True) -> list[Doc]:
        if not new_edits:
            replicated.append(len(docs))
            if len(replicated) == 2:  # the merge's own branch is restored in a second step
                raise CouchUnreachable("connection reset by peer")
        return original(self, docs, new_edits=new_edits)

    monkeypatch.setattr(Database, "bulk_docs", bulk_docs)
    undo = ["conflicts", "undo", resolution, "--caseload", caseload.id, "--reason", "x",
            "--yes"]
    assert cli(*undo).exit_code == 1
    assert len(live(caseload.db, made.doc_id)) == 1  # half done: the other branch is back
    monkeypatch.undo()
    finished = cli(*undo)
    assert finished.exit_code == 0, finished.stderr
    assert bodies(live(caseload.db, made.doc_id)) == bodies(before)
