"""``carecouch credentials`` and ``carecouch audit break-glass`` against credentials a real
bridge issued; ``carecouch caseload apply`` letting the bridge into existing caseloads."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from click.testing import Result

from carecouch.clock import format_utc
from carecouch.credentials import CredentialStore
from carecouch.ids import caseload_db, user_doc_id
from carecouch.provisioning import Provisioner
from tests.bridge.support import refused_soon, works
from tests.helpers.bridge_client import DeviceClient
from tests.helpers.bridges import BridgeServer, World


def test_list_and_revoke_a_device(run_cli: Callable[..., Result], nurse: DeviceClient,
                                  world: World, server: Any) -> None:
    body = nurse.credentials()
    listed = json.loads(run_cli("credentials", "list", "--user", nurse.user,
                                "--json").stdout)
    assert body["username"] in [s["name"] for s in listed]
    refused = run_cli("credentials", "revoke", "--device", nurse.device_id, input="n\n")
    assert refused.exit_code == 1 and "was not revoked" in refused.stderr
    # No terminal, nothing on stdin: one line that says how, never a bare "Aborted!".
    unanswered = run_cli("credentials", "revoke", "--device", nurse.device_id, input="")
    assert unanswered.exit_code == 1 and "Aborted" not in unanswered.output
    assert unanswered.stderr.splitlines()[-1] == (
        f"error: not confirmed; device {nurse.device_id} was not revoked (no answer: "
        "without a terminal, give --yes)")
    assert works(server, body["username"], body["password"])
    result = run_cli("credentials", "revoke", "--device", nurse.device_id, "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"revoked device {nurse.device_id}: 1 credential deleted\n"
    assert refused_soon(server, body)
    assert nurse.call("POST", "/v1/credentials", {}).json()["error"] == "device.revoked"


def test_revoke_usage_errors(run_cli: Callable[..., Result]) -> None:
    assert run_cli("credentials", "revoke", "--yes").exit_code == 2
    assert run_cli("credentials", "revoke", "--user", "a~b", "--yes").exit_code == 2
    missing = run_cli("credentials", "revoke", "--device", "no-such-device", "--yes")
    assert missing.exit_code == 1 and missing.stderr == \
        "error: no device no-such-device is enrolled\n"


def test_revoke_a_user(run_cli: Callable[..., Result], nurse: DeviceClient, world: World,
                       server: Any) -> None:
    body = nurse.credentials()
    result = run_cli("credentials", "revoke", "--user", nurse.user, "--yes", "--json")
    assert body["username"] in json.loads(result.stdout)["deleted"]
    assert refused_soon(server, body)


def test_reap_deletes_only_expired_credentials(run_cli: Callable[..., Result],
                                               nurse: DeviceClient, world: World,
                                               server: Any) -> None:
    body = nurse.credentials()
    users = world.admin.db("_users")
    doc = users.get(user_doc_id(body["username"]))
    doc["carecouch"]["expires_at"] = format_utc(datetime.now(UTC) - timedelta(seconds=1))
    users.put(doc)  # no password in the doc: CouchDB keeps the hash
    fresh = DeviceClient(nurse.base_url, nurse.token)
    fresh.enrol()
    other = fresh.credentials()
    dry = json.loads(run_cli("credentials", "reap", "--dry-run", "--json").stdout)
    assert body["username"] in [s["name"] for s in dry["reaped"]]
    assert works(server, body["username"], body["password"])
    result = run_cli("credentials", "reap")
    assert f"deleted {body['username']} (expired " in result.stdout
    assert refused_soon(server, body)
    assert works(server, other["username"], other["password"])
    assert other["username"] in [s.name for s in CredentialStore(world.admin).sessions()]


def test_audit_break_glass_lists_them_for_review(run_cli: Callable[..., Result],
                                                 bridge: BridgeServer, world: World) -> None:
    senior = bridge.enrolled_device(world.user("senior2"), [world.group("senior")])
    reason = "Unconscious patient found; need the medication list from the other team."
    response = senior.call("POST", "/v1/break-glass", {"caseload": world.caseloads["c"],
                                                      "justification": reason})
    assert response.status_code == 201, response.text
    listed = json.loads(run_cli("audit", "break-glass", "--user", world.user("senior2"),
                                "--json").stdout)
    assert [(e["caseload"], e["justification"], e["review"]) for e in listed] == [
        (world.caseloads["c"], reason, "pending")]
    text = run_cli("audit", "break-glass", "--user", world.user("senior2")).stdout
    assert reason in text and text.endswith("1 break-glass grant\n")


def test_caseload_apply_lets_the_bridge_into_existing_caseloads(
        run_cli: Callable[..., Result], admin: Any, caseload_ids: Callable[[], str],
        tmp_path: Any) -> None:
    """Caseloads made before the bridge existed carry members.roles = [caseload:<id>] only;
    `caseload apply` re-asserts the security that now includes carecouch:bridge."""
    caseload_id = caseload_ids()
    Provisioner(admin).create(caseload_id, name="Old", team="t")
    db = admin.db(caseload_db(caseload_id))
    db.put_security({"admins": {"roles": ["_admin"]},
                     "members": {"roles": [f"caseload:{caseload_id}"]}})
    manifest = tmp_path / "caseloads.yaml"
    manifest.write_text(f"caseloads:\n  - id: {caseload_id}\n    name: Old\n    team: t\n")
    result = run_cli("caseload", "apply", str(manifest), "--json")
    assert json.loads(result.stdout)["caseloads"][0]["actions"] == ["security"]
    assert db.get_security()["members"]["roles"] == [f"caseload:{caseload_id}",
                                                     "carecouch:bridge"]
