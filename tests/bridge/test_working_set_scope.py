"""Scope size before sync: how many documents and bytes a device of a user would hold, per
caseload (``GET /v1/policy``, ``carecouch policy explain``), and the policy's hard cap, which
the bridge enforces at issuance (carecouch/working_set.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result

from carecouch.couch import CouchClient, Database
from carecouch.ids import caseload_db
from carecouch.provisioning import Provisioner
from tests.helpers.bridge_client import assert_documented
from tests.helpers.bridges import BridgeServer, World
from tests.helpers.records import envelope, iso, put

POLICY = """\
version: 1
defaults:
  credential_lifetime: 1h
admins:
  groups: [it-{run}]
rules:
  - name: field nurses
    users: [{user}]
    clinical_roles: [nurse]
    caseloads: [{caseload}]
    filter:
      time_window: 7d
      pinned_subjects: [patient-pinned]
{extra}"""


def note(db: Database, *, days_ago: float, subject: str = "patient-001") -> int:
    """A progress note on the server; its size as the working_set view counts it (the JSON
    of the stored document)."""
    doc = envelope("progress_note", "colleague", "tablet-9", subject=subject, text="seen",
                   at=iso(datetime.now(UTC) - timedelta(days=days_ago)))
    put(db, doc)
    stored = db.get(doc["_id"])
    return len(json.dumps(stored, separators=(",", ":"), ensure_ascii=False))


@pytest.fixture
def scoped(admin: CouchClient, caseload_ids: Callable[[], str], world: World
           ) -> tuple[str, str, Database, int]:
    """A caseload with notes in and out of a 7-day window, and a pinned patient's old one:
    (caseload id, user, its database, the bytes a device would hold)."""
    caseload_id = caseload_ids()
    Provisioner(admin).create(caseload_id)
    db = admin.db(caseload_db(caseload_id))
    held = sum(note(db, days_ago=days) for days in (1, 2, 3))
    note(db, days_ago=20)  # outside the window, not pinned: not held
    held += note(db, days_ago=40, subject="patient-pinned")
    return caseload_id, world.user(f"scope{caseload_id[-6:]}"), db, held


def policy(world: World, user: str, caseload: str, extra: str = "") -> str:
    return POLICY.format(run=world.run, user=user, caseload=caseload, extra=extra)


def test_the_bridge_says_what_a_device_would_hold(
        scoped: tuple[str, str, Database, int], make_bridge: Callable[..., BridgeServer],
        world: World) -> None:
    caseload, user, _, held = scoped
    bridge = make_bridge(policy(world, user, caseload))
    device = bridge.enrolled_device(user)
    answer = device.call("GET", "/v1/policy", signed=False)
    assert answer.status_code == 200, answer.text
    assert_documented(bridge.url, "/v1/policy", answer)
    assert answer.json()["scope"] == {caseload: {"documents": 4, "bytes": held}}
    assert answer.json()["over_limits"] == []


def test_the_cap_refuses_credentials_with_a_clear_error(
        scoped: tuple[str, str, Database, int], make_bridge: Callable[..., BridgeServer],
        world: World) -> None:
    caseload, user, db, held = scoped
    bridge = make_bridge(policy(world, user, caseload, "    max_documents: 3\n"))
    device = bridge.enrolled_device(user)
    refused = device.call("POST", "/v1/credentials", {})
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["error"] == "policy.scope_too_large"
    assert "4 documents (the policy allows 3)" in body["message"]
    assert body["details"]["caseloads"] == {caseload: {"documents": 4, "bytes": held}}
    assert "\n" not in body["message"]

    # Bytes too; and at the cap itself, credentials are issued.
    bridge.write_policy(policy(world, user, caseload, f"    max_bytes: {held - 1}\n"))
    refused = device.call("POST", "/v1/credentials", {})
    assert refused.status_code == 422 and f"{held} bytes" in refused.json()["message"]
    bridge.write_policy(policy(world, user, caseload,
                               f"    max_documents: 4\n    max_bytes: {held}\n"))
    issued = device.call("POST", "/v1/credentials", {})
    assert issued.status_code == 201, issued.text
    # A fifth record in the window makes the next issuance too large.
    note(db, days_ago=0)
    assert device.call("POST", "/v1/credentials", {}).status_code == 422


def test_policy_explain_counts_and_warns(scoped: tuple[str, str, Database, int],
                                         run_cli: Callable[..., Result], world: World,
                                         tmp_path: Path) -> None:
    caseload, user, _, held = scoped
    path = tmp_path / "policy.yaml"
    path.write_text(policy(world, user, caseload, "    max_documents: 2\n"))
    result = run_cli("policy", "explain", user, "--policy", str(path))
    assert result.exit_code == 0, result.output
    assert "  a device would hold 4 documents, " in result.stdout
    assert "device cap           at most 2 documents (all caseloads)\n" in result.stdout
    assert "TOO LARGE: a device would hold 4 documents (the policy allows 2): the bridge " \
        "refuses credentials\n" in result.stdout
    data = json.loads(run_cli("policy", "explain", user, "--policy", str(path),
                              "--json").stdout)
    assert data["scope"] == {caseload: {"documents": 4, "bytes": held}}
    assert data["over_limits"] == ["4 documents (the policy allows 2)"]
