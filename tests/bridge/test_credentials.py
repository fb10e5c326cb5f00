"""Enrolment, issuance, rotation, revocation and the signed policy snapshot, end to end: a real
bridge issues real CouchDB users, and the tests log in to CouchDB with them."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest

from carecouch import revocation
from carecouch.audit import AuditLog
from carecouch.couch import CouchClient
from carecouch.credentials import CredentialStore
from carecouch.errors import CouchError
from carecouch.signing import BadSignature, b64url, b64url_decode, verify_token
from tests.bridge.support import refused_soon, works
from tests.helpers.bridge_client import DeviceClient, assert_documented
from tests.helpers.bridges import BridgeServer, World
from tests.helpers.waiting import wait_until


def login(server: Any, body: dict[str, Any]) -> CouchClient:
    return CouchClient(server.url, body["username"], body["password"], retries=0)


def public_key(bridge: BridgeServer) -> Any:
    import httpx

    jwks = httpx.get(bridge.url + "/v1/keys").json()
    return jwt.PyJWK(jwks["keys"][0]).key


def test_issued_credentials_replicate_the_granted_caseloads(
        bridge: BridgeServer, world: World, nurse: DeviceClient, server: Any) -> None:
    body = nurse.credentials()
    a, b = world.caseloads["a"], world.caseloads["b"]
    assert body["username"] == f"{nurse.user}~{nurse.device_id}"
    # Roles hold per caseload: the nurse role is granted in each caseload, by name.
    assert sorted(body["roles"]) == sorted([f"caseload:{a}", f"caseload:{b}",
                                            f"clinical:nurse@{a}", f"clinical:nurse@{b}"])
    assert [d["caseload"] for d in body["databases"]] == [a, b]
    assert body["databases"][0]["filter"]["name"] == "carecouch/device"
    assert set(body["databases"][0]["filter"]["query_params"]) == {"not_before"}
    assert body["expires_at"] > body["server_time"] > body["issued_at"][:19]
    with login(server, body) as client:
        assert client.session()["userCtx"]["roles"] == body["roles"]
        assert client.db(f"caseload_{a}").info()["db_name"] == f"caseload_{a}"
    user_doc = world.admin.db("_users").get(f"org.couchdb.user:{body['username']}")
    assert user_doc["carecouch"]["expires_at"] == body["expires_at"]
    assert user_doc["carecouch"]["device"] == nurse.device_id


def test_snapshot_verifies_offline_with_the_published_key(
        bridge: BridgeServer, world: World, nurse: DeviceClient) -> None:
    body = nurse.credentials()
    # Verified with PyJWT, independently of the bridge's own code.
    claims = jwt.decode(body["snapshot"], public_key(bridge), algorithms=["EdDSA"])
    assert jwt.get_unverified_header(body["snapshot"])["typ"] == "carecouch-snapshot+jws"
    assert claims["sub"] == nurse.user and claims["device"] == nurse.device_id
    assert claims["credential_expires_at"] == body["expires_at"]
    assert claims["offline_until"] > body["expires_at"]  # offline_grace 2d > lifetime 1h
    assert [d["name"] for d in claims["databases"]] == [d["name"] for d in body["databases"]]
    assert "observation" in claims["record_types"]


def test_tampered_snapshot_is_detected(bridge: BridgeServer, nurse: DeviceClient) -> None:
    token = nurse.credentials()["snapshot"]
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims["record_types"].append("order_signoff")  # a device granting itself more
    forged = ".".join([header, b64url(json.dumps(claims).encode()), signature])
    key = public_key(bridge)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(forged, key, algorithms=["EdDSA"])
    with pytest.raises(BadSignature):
        verify_token(forged, key, "carecouch-snapshot+jws")
    assert verify_token(token, key, "carecouch-snapshot+jws")["device"] == nurse.device_id
    with pytest.raises(BadSignature):  # the right bytes, presented as another kind of token
        verify_token(token, key, "carecouch-lease+jws")


def test_new_credentials_rotate_the_old_password_away(
        bridge: BridgeServer, nurse: DeviceClient, server: Any) -> None:
    first = nurse.credentials()
    second = nurse.credentials()
    assert second["username"] == first["username"] and second["rotated"] == [first["username"]]
    assert refused_soon(server, first)
    assert works(server, second["username"], second["password"])


def test_another_user_on_the_device_rotates_the_first_away(
        bridge: BridgeServer, world: World, nurse: DeviceClient, server: Any) -> None:
    first = nurse.credentials()
    colleague = DeviceClient(bridge.url, bridge.idp.token(world.user("nurse2"),
                                                           [world.group("nurses")]),
                             device_id=nurse.device_id, key=nurse.key)  # a shared tablet
    second = colleague.credentials()
    assert second["rotated"] == [first["username"]]
    assert refused_soon(server, first)
    assert world.admin.db("_users").get_or_none(f"org.couchdb.user:{first['username']}") is None
    assert works(server, second["username"], second["password"])


def test_revoking_a_lost_device_ends_its_access_at_once(
        bridge: BridgeServer, world: World, nurse: DeviceClient, server: Any) -> None:
    body = nurse.credentials()
    # Revoked from another place (the device is lost): bearer token only, no signature.
    response = nurse.call("DELETE", f"/v1/devices/{nurse.device_id}", signed=False)
    assert response.status_code == 200, response.text
    assert_documented(bridge.url, "/v1/devices/{device_id}", response)
    assert response.json()["deleted_credentials"] == [body["username"]]
    assert response.json()["device"]["status"] == "revoked"
    assert refused_soon(server, body)
    refused = nurse.call("POST", "/v1/credentials", {})
    assert (refused.status_code, refused.json()["error"]) == (403, "device.revoked")
    # Told so even when the clinician's identity token has expired: the device learns it is
    # revoked (and wipes itself) at its next contact, not at the next sign-in.
    expired = bridge.idp.token(nurse.user, lifetime=-60)
    for path in ("/v1/credentials", "/v1/leases", "/v1/break-glass"):
        refused = nurse.call("POST", path, {}, token=expired)
        assert (refused.status_code, refused.json()["error"]) == (403, "device.revoked"), path
    actions = [e["action"] for e in AuditLog(world.admin, "t").entries(subject=nurse.device_id)]
    assert actions[-2:] == ["device.revoke", "credentials.revoke"]


def test_only_the_owner_or_an_admin_revokes_a_device(
        bridge: BridgeServer, world: World, nurse: DeviceClient) -> None:
    stranger = bridge.device(world.user("stranger"), [world.group("nurses")])
    response = stranger.call("DELETE", f"/v1/devices/{nurse.device_id}", signed=False)
    assert (response.status_code, response.json()["error"]) == (404, "device.unknown")
    admin = bridge.device(world.user("it"), [world.group("it")])
    assert admin.call("DELETE", f"/v1/devices/{nurse.device_id}",
                      signed=False).status_code == 200


def test_revoking_a_user_deletes_every_credential_and_their_token(
        bridge: BridgeServer, world: World, server: Any) -> None:
    user = world.user("nurse3")
    tablets = [bridge.device(user, [world.group("nurses")]) for _ in range(2)]
    issued = []
    for tablet in tablets:
        tablet.enrol()
        issued.append(tablet.credentials())
    admin = bridge.device(world.user("it"), [world.group("it")])
    response = admin.call("DELETE", f"/v1/users/{user}/credentials", signed=False)
    assert response.status_code == 200, response.text
    assert_documented(bridge.url, "/v1/users/{user}/credentials", response)
    assert sorted(response.json()["deleted_credentials"]) == sorted(
        b["username"] for b in issued)
    [entry] = AuditLog(world.admin, "t").entries(subject=user, action="credentials.revoke")
    assert entry["actor"] == world.user("it")
    assert sorted(entry["details"]["deleted"]) == sorted(b["username"] for b in issued)
    for body in issued:
        assert refused_soon(server, body)
    # The token issued before the revocation no longer gets new credentials.
    again = tablets[0].call("POST", "/v1/credentials", {})
    assert (again.status_code, again.json()["error"]) == (401, "auth.revoked")
    # A fresh sign-in (a token issued after the revocation) does.
    import time

    # A real wait: the bridge compares the token's iat (whole seconds) with the revocation's
    # time by its own clock, and refuses a token issued in the future.
    time.sleep(1.1)
    tablets[0].token = bridge.idp.token(user, [world.group("nurses")])
    assert tablets[0].credentials()["username"] == issued[0]["username"]


def test_a_user_cannot_revoke_someone_else(bridge: BridgeServer, world: World) -> None:
    somebody = bridge.device(world.user("nurse4"), [world.group("nurses")])
    response = somebody.call("DELETE", f"/v1/users/{world.user('someone')}/credentials",
                             signed=False)
    assert (response.status_code, response.json()["error"]) == (403, "auth.not_admin")


def test_user_without_caseloads_gets_nothing(bridge: BridgeServer, world: World) -> None:
    outsider = bridge.device(world.user("outsider"), ["no-such-group"])
    response = outsider.call("POST", "/v1/devices", {"device": outsider.device_id,
                                                     "public_key": outsider.public_key})
    assert (response.status_code, response.json()["error"]) == (403, "policy.no_grant")


def test_every_issuance_and_rotation_is_audited(bridge: BridgeServer, world: World,
                                                nurse: DeviceClient) -> None:
    nurse.credentials()
    second = nurse.credentials()
    entries = AuditLog(world.admin, "t").entries(subject=nurse.user)
    mine = [e for e in entries if e["details"].get("device") == nurse.device_id]
    assert [e["action"] for e in mine] == ["credentials.issue", "credentials.issue",
                                           "credentials.rotate"]
    assert mine[-1]["details"]["replaced"] == [second["username"]]
    assert mine[0]["actor"] == nurse.user
    [enrolled] = AuditLog(world.admin, "t").entries(subject=nurse.device_id,
                                                    action="device.enrol")
    assert enrolled["actor"] == nurse.user
    assert enrolled["details"]["public_key"] == nurse.public_key


def test_break_glass_needs_the_policy_and_a_justification(
        bridge: BridgeServer, world: World, server: Any) -> None:
    senior = bridge.enrolled_device(world.user("senior"),
                                    [world.group("nurses"), world.group("senior")])
    d = world.caseloads["d"]
    short = senior.call("POST", "/v1/break-glass", {"caseload": d, "justification": "urgent"})
    assert (short.status_code, short.json()["error"]) == (400, "request.bad_field")
    reason = "Patient collapsed at home; district team unreachable, need allergy history."
    response = senior.call("POST", "/v1/break-glass", {"caseload": d, "justification": reason})
    assert response.status_code == 201, response.text
    assert_documented(bridge.url, "/v1/break-glass", response)
    body = response.json()
    assert f"caseload:{d}" in body["roles"] and body["break_glass"]["review"] == "pending"
    assert [x["caseload"] for x in body["databases"] if x.get("break_glass")] == [d]
    lifetime = (_parse(body["expires_at"]) - _parse(body["issued_at"])).total_seconds()
    assert round(lifetime) == 15 * 60  # the policy's break-glass lifetime, not the usual 1h
    # Nor may the device work offline on it for the usual grace (2d): it ends with it.
    snapshot = jwt.decode(body["snapshot"], public_key(bridge), algorithms=["EdDSA"])
    assert snapshot["offline_until"] <= body["expires_at"]
    assert snapshot["break_glass"]["justification"] == reason
    with login(server, body) as client:
        assert client.db(f"caseload_{d}").info()["doc_count"] >= 0
    entries = AuditLog(world.admin, "t").entries(subject=d, action="break_glass.issue")
    assert entries[-1]["details"]["justification"] == reason
    assert entries[-1]["details"]["review"] == "pending"
    assert entries[-1]["details"]["name"] == body["username"]
    # A nurse the policy does not name cannot.
    nurse = bridge.enrolled_device(world.user("nurse5"), [world.group("nurses")])
    refused = nurse.call("POST", "/v1/break-glass", {"caseload": d, "justification": reason})
    assert (refused.status_code, refused.json()["error"]) == (403, "break_glass.not_allowed")
    # Nor is it needed for a caseload the policy grants.
    granted = senior.call("POST", "/v1/break-glass", {"caseload": world.caseloads["a"],
                                                      "justification": reason})
    assert (granted.status_code, granted.json()["error"]) == (409, "break_glass.not_needed")


def test_expired_credentials_stop_working_within_the_documented_bound(
        make_bridge: Any, world: World, server: Any) -> None:
    """docs/bridge.md: a credential works at most REAP_INTERVAL + one reaper pass + CouchDB's
    auth-cache eviction after its expiry. Here: 2 s lifetime, 1 s interval."""
    import time

    short = world.policy().replace("credential_lifetime: 1h", "credential_lifetime: 2s")
    bridge = make_bridge(short, CARECOUCH_BRIDGE_REAP_INTERVAL="1")
    device = bridge.enrolled_device(world.user("nurse6"), [world.group("nurses")])
    body = device.credentials()
    expires = _parse(body["expires_at"]).timestamp()
    assert works(server, body["username"], body["password"])  # before expiry: works
    # The bridge's reaper and CouchDB's auth cache run on the real clock: a real wait.
    wait_until(lambda: not works(server, body["username"], body["password"]),
               timeout=expires + 1 + 5 - time.time(),
               what="the credential stops working (it must not outlive the documented bound)")
    gone_after = time.time() - expires
    assert gone_after > -0.5  # not reaped before it expired
    reaped = AuditLog(world.admin, "t").entries(subject=world.user("nurse6"),
                                                action="credentials.reap")
    assert [e["details"]["name"] for e in reaped] == [body["username"]]


def test_an_idle_bridge_reaps_too(make_bridge: Any, world: World, server: Any) -> None:
    """The bound holds while a bridge runs, whether or not anyone calls it: a restarted
    bridge that nobody has asked anything yet still deletes expired credentials."""
    import time

    make_bridge(CARECOUCH_BRIDGE_REAP_INTERVAL="1")
    store = CredentialStore(world.admin)
    issued = store.issue(world.user("nurse12"), "idle-tablet", ["clinical:nurse"], 1)
    assert works(server, issued.name, issued.password)
    expires = _parse(issued.expires_at).timestamp()
    wait_until(lambda: not works(server, issued.name, issued.password),
               timeout=expires + 1 + 5 - time.time(), what="an idle bridge reaps the credential")
    assert issued.name not in [s.name for s in store.sessions(user=world.user("nurse12"))]


@pytest.mark.parametrize("revoke", ["device", "user"])
def test_a_revocation_during_an_issuance_leaves_no_working_credential(
        make_bridge: Any, world: World, server: Any, monkeypatch: pytest.MonkeyPatch,
        revoke: str) -> None:
    """The revocation lands after the bridge checked the device and the user, but before
    it wrote the CouchDB user: the revocation's own sweep cannot have seen that user."""
    bridge = make_bridge()
    device = bridge.enrolled_device(world.user(f"nurse13{revoke}"), [world.group("nurses")])
    store = bridge.services.credentials
    write = store.issue

    def revoked_meanwhile(*args: Any, **kwargs: Any) -> Any:
        if revoke == "device":
            revocation.revoke_device(world.admin, device.device_id, "it")
        else:
            revocation.revoke_user(world.admin, device.user, "it")
        return write(*args, **kwargs)

    monkeypatch.setattr(store, "issue", revoked_meanwhile)
    response = device.call("POST", "/v1/credentials", {})
    expected = (403, "device.revoked") if revoke == "device" else (401, "auth.revoked")
    assert (response.status_code, response.json()["error"]) == expected
    assert [s.name for s in CredentialStore(world.admin).sessions(user=device.user)] == []


def test_policy_edit_that_breaks_the_file_keeps_the_last_good_policy(
        make_bridge: Any, world: World) -> None:
    bridge = make_bridge()
    device = bridge.enrolled_device(world.user("nurse7"), [world.group("nurses")])
    good = device.credentials()
    bridge.write_policy(world.policy().replace("clinical_roles: [nurse]",
                                               "clinical_roles: [surgeon]"))
    health = bridge.services.policy
    again = device.credentials()
    assert again["policy_version"] == good["policy_version"]
    line = world.policy().splitlines().index("    clinical_roles: [nurse]") + 1
    assert health.error is not None
    assert f".yaml:{line}: unknown clinical role 'surgeon'" in health.error
    import httpx

    # /healthz, which anyone may call, says where the edit broke and what the bridge keeps,
    # not the reason (it can quote user and group names from the policy).
    status = httpx.get(bridge.url + "/healthz").json()
    assert status["status"] == "ok" and status["policy_version"] == good["policy_version"]
    assert status["policy_error"].startswith(f"{bridge.policy_file.name}:{line}: ")
    assert good["policy_version"] in status["policy_error"]
    assert "surgeon" not in status["policy_error"]
    # A good edit is picked up on the next request.
    bridge.write_policy(world.policy().replace("lease_lifetime: 10m", "lease_lifetime: 20m"))
    assert device.credentials()["policy_version"] != good["policy_version"]
    assert bridge.services.policy.error is None


def _parse(value: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_couch_errors_from_revoked_sessions_are_401(bridge: BridgeServer, world: World,
                                                     nurse: DeviceClient,
                                                     server: Any) -> None:
    body = nurse.credentials()
    db_name = body["databases"][0]["name"]
    with login(server, body) as client:
        client.db(db_name).info()
        nurse.call("DELETE", f"/v1/devices/{nurse.device_id}", signed=False)
        wait_until(lambda: _status(client, db_name) == 401, timeout=10,
                   what="the server refuses the revoked session")


def _status(client: CouchClient, db_name: str) -> int:
    try:
        client.db(db_name).info()
        return 200
    except CouchError as exc:
        return exc.status
