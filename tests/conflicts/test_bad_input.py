"""What a clinical admin mistypes gets one line saying what is wrong, never a traceback:
exit 2 for bad usage, 1 when the operation failed; a missing caseload does not stop the rest."""

from __future__ import annotations

import json

from click.testing import Result

from tests.conflicts.support import Cli, Factory, live, mergeable
from tests.helpers.provisioned import Caseload

MISSING = "no-such-ward"


def one_line(result: Result, code: int, text: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and text in errors[0], result.stderr
    assert "Traceback" not in result.output


def test_usage_errors(caseload: Caseload, cli: Cli) -> None:
    one_line(cli("audit", "resolutions", "--caseload", caseload.id, "--since", "yesterday"),
             2, "--since takes an ISO 8601 UTC time")
    one_line(cli("conflicts", "show", "care_plan:x", "--caseload", "Ward_7"), 2,
             "bad caseload id")
    for endpoint in ("_all_docs", "_changes", "_design/carecouch"):  # CouchDB's, not records
        one_line(cli("conflicts", "show", endpoint, "--caseload", caseload.id), 2,
                 "is not a record id")
    one_line(cli("conflicts", "resolve", "_all_docs", "--caseload", caseload.id, "--keep",
                 "1-x", "--reason", "x", "--yes"), 2, "is not a record id")
    one_line(cli("conflicts", "undo", "resolution:nope", "--caseload", caseload.id,
                 "--reason", "x", "--yes"), 1, "no resolution resolution:nope")
    one_line(cli("conflicts", "show", "care_plan:x", "--caseload", MISSING), 1,
             f"caseload {MISSING} does not exist")


def test_since_takes_a_date_or_any_precision(caseload: Caseload, person: Factory,
                                             cli: Cli) -> None:
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    made = mergeable(caseload, a, b)
    assert cli("conflicts", "resolve", made.doc_id, "--caseload", caseload.id, "--keep",
               made.revs[0], "--reason", "x", "--yes").exit_code == 0
    [entry] = json.loads(cli("audit", "resolutions", "--caseload", caseload.id,
                             "--json").stdout)["resolutions"]
    at = entry["at"]  # e.g. 2026-11-28T10:00:00.123456Z
    for since, found in ((at[:10], 1), (at, 1), (at[:19] + "Z", 1), ("2999-01-01", 0)):
        result = cli("audit", "resolutions", "--caseload", caseload.id, "--since", since,
                     "--json")
        assert result.exit_code == 0, result.stderr
        assert len(json.loads(result.stdout)["resolutions"]) == found, since


def test_a_missing_caseload_does_not_stop_the_others(caseload: Caseload, person: Factory,
                                                     cli: Cli) -> None:
    a, b = person("nurse", device="tablet-a"), person("nurse", device="tablet-b")
    made = mergeable(caseload, a, b)
    both = ("--caseload", MISSING, "--caseload", caseload.id)
    listed = cli("conflicts", "list", *both, "--json")
    assert listed.exit_code == 1 and f"caseload {MISSING} does not exist" in listed.stderr
    assert [c["doc"] for c in json.loads(listed.stdout)["conflicts"]] == [made.doc_id]
    done = cli("conflicts", "auto", *both, "--yes", "--json")
    one_line(done, 1, "1 caseload was not read")
    assert [o["status"] for o in json.loads(done.stdout)["outcomes"]] == ["resolved"]
    assert len(live(caseload.db, made.doc_id)) == 1
