"""`carecouch audit resolutions`: who resolved what, when and why."""

from __future__ import annotations

import json

from carecouch.audit import AuditLog
from carecouch.couch import CouchClient
from tests.conflicts.support import Cli, Factory, mergeable
from tests.helpers.provisioned import Caseload


def test_resolutions_and_their_undo_are_on_the_trail(
        admin: CouchClient, caseload: Caseload, person: Factory, cli: Cli) -> None:
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    resolver = person("carecouch:resolver", device="desk")
    first, second = mergeable(caseload, a, b), mergeable(caseload, a, b)
    kept = json.loads(cli("conflicts", "resolve", first.doc_id, "--caseload", caseload.id,
                          "--keep", first.revs[0], "--reason", "A is current", "--yes",
                          "--json").stdout)
    undone = json.loads(cli("conflicts", "undo", kept["resolution"], "--caseload",
                            caseload.id, "--reason", "ask the team", "--yes",
                            "--json").stdout)
    by_resolver = cli("conflicts", "resolve", second.doc_id, "--caseload", caseload.id,
                      "--keep", second.revs[1], "--reason", "B is current", "--yes",
                      user=resolver.account)
    assert by_resolver.exit_code == 0, by_resolver.stderr

    result = cli("audit", "resolutions", "--caseload", caseload.id, "--json")
    assert result.exit_code == 0, result.stderr
    entries = {e["resolution"]: e for e in json.loads(result.stdout)["resolutions"]}
    assert len(entries) == 3
    first_entry = entries[kept["resolution"]]
    assert (first_entry["resolver"], first_entry["reason"], first_entry["method"]) == (
        "admin", "A is current", "keep")
    assert first_entry["undone_by"] == [undone["resolution"]["_id"]]
    assert first_entry["sources"] == ["record", "audit"]
    assert first_entry["status"] == "resolved" and first_entry["discarded_revs"] == [
        first.revs[1]]
    [own] = [e for e in entries.values() if e["doc"] == second.doc_id]
    assert (own["resolver"], own["sources"]) == (resolver.user, ["record"])  # no audit access
    # One audit entry per resolution written by the admin, through carecouch/audit.py.
    logged = [e for e in AuditLog(admin, "test").entries(subject=caseload.id)
              if e["action"].startswith("conflict.")]
    assert {(e["action"], e["details"]["resolution"]) for e in logged} == {
        ("conflict.resolve", kept["resolution"]),
        ("conflict.undo", undone["resolution"]["_id"])}

    text = cli("audit", "resolutions", "--caseload", caseload.id)
    assert "3 resolutions" in text.stdout and "A is current" in text.stdout
    as_resolver = cli("audit", "resolutions", "--json", user=resolver.account)
    assert as_resolver.exit_code == 0, as_resolver.stderr
    assert len(json.loads(as_resolver.stdout)["resolutions"]) == 3
    assert "server admins only" in as_resolver.stderr
