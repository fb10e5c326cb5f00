"""The device's bridge session as a library: what it trusts, how it renews, and what it
refuses offline. Real bridge, real server, real HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carecouch.clock import parse_utc
from carecouch.couch import CouchClient
from carecouch.ids import caseload_db
from carecouch.signing import Signer, b64url, b64url_decode, write_private_key
from mobile_stub import enrolment, leases
from mobile_stub.bridge_api import BridgeClient
from mobile_stub.errors import (
    BadRecord,
    NotLoggedIn,
    PolicyRefused,
    SecretDamaged,
    TokenRefused,
)
from mobile_stub.replication import SyncState
from mobile_stub.session import SESSION, BridgeSession
from mobile_stub.store import DeviceStore
from mobile_stub.trust import LEASE_TYPE, SNAPSHOT_TYPE
from tests.helpers.bridges import POLICY, BridgeServer, World
from tests.helpers.devices import Clinician, exclusive_record, fast_options
from tests.helpers.records import observation
from tests.helpers.server import Server

from .support import delete_user

VITALS = {k: v for k, v in observation("x", "y").items()
          if k not in ("_id", "type", "author", "device", "at", "clock_offset_ms")}


def stored(session: BridgeSession) -> dict[str, Any]:
    return dict(json.loads(session.store.secrets.get(SESSION) or "{}"))


def edited(token: str, change: Callable[[dict[str, Any]], None]) -> str:
    """``token`` with its payload changed and the original signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    change(claims)
    return ".".join([header, b64url(json.dumps(claims).encode()), signature])


def replace_snapshot(store: DeviceStore, token: str) -> None:
    state = json.loads(store.secrets.get(SESSION) or "{}")
    state["snapshot"] = token
    store.secrets.put(SESSION, json.dumps(state))


def test_a_tampered_snapshot_is_refused_and_a_new_login_replaces_it(
        enrolled: Callable[..., BridgeSession], clinician: Callable[..., Clinician],
        world: World) -> None:
    store = enrolled(clinician("hca")).store  # observations only
    school = caseload_db(world.caseloads["c"])
    genuine = stored(BridgeSession(store))["snapshot"]
    replace_snapshot(store, edited(genuine, lambda c: c["record_types"].append(
        "progress_note")))
    store.set_offline(True)  # online, the device would simply fetch a genuine one
    session = BridgeSession(store)  # as the device app starts again, say
    device = session.device(options=fast_options())
    with pytest.raises(TokenRefused, match="snapshot does not verify: the signature does not"):
        device.new_record(school, "progress_note", {"subject": "patient-007", "text": "x"})
    with pytest.raises(TokenRefused):  # what was allowed before is not allowed now either
        device.new_record(school, "observation", {"subject": "patient-007", **VITALS})
    report = device.sync(school)
    assert report.state is SyncState.POLICY and "does not verify" in report.message
    assert "does not verify" in session.describe()["snapshot_error"]

    other_bridge = Signer(Ed25519PrivateKey.generate())
    claims = json.loads(b64url_decode(genuine.split(".")[1]))
    replace_snapshot(store, other_bridge.sign(claims, SNAPSHOT_TYPE))
    with pytest.raises(TokenRefused, match="did not pin"):
        BridgeSession(store).snapshot()

    store.set_offline(False)  # online again: the next edit fetches a genuine snapshot first
    device.new_record(school, "observation", {"subject": "patient-007", **VITALS})
    assert session.snapshot().record_types == {"observation"}
    assert device.sync(school).ok


def test_a_damaged_session_is_no_session_and_a_login_replaces_it(
        enrolled: Callable[..., BridgeSession], clinician: Callable[..., Clinician]) -> None:
    nurse = clinician()
    store = enrolled(nurse).store
    store.set_meta("secret:session", store.get_meta("secret:idp_token") or "")  # moved: no
    with pytest.raises(NotLoggedIn):
        BridgeSession(store).current()
    store.set_meta("secret:idp_token", "bm90IHNlYWxlZA")
    with pytest.raises(SecretDamaged, match="sealed idp_token does not open"):
        store.secrets.get("idp_token")
    assert not BridgeSession(store).describe()["logged_in"]
    with pytest.raises(NotLoggedIn, match="no identity-provider token"):
        BridgeSession(store).login()
    assert BridgeSession(store, token=nurse.token()).login()["logged_in"]
    assert BridgeSession(store).current().username.startswith(nurse.user + "~")


def test_a_bridge_signing_with_another_key_is_not_believed(
        enrolled: Callable[..., BridgeSession], make_bridge: Callable[..., BridgeServer],
        tmp_path: Path, world: World) -> None:
    session = enrolled()
    before = stored(session)
    key_file = tmp_path / "impostor.pem"
    write_private_key(key_file, Ed25519PrivateKey.generate())
    impostor = make_bridge(CARECOUCH_BRIDGE_SIGNING_KEY_FILE=str(key_file))
    session.store.set_meta(enrolment.BRIDGE_URL, impostor.url)  # e.g. a hijacked name
    hijacked = BridgeSession(session.store)

    with pytest.raises(TokenRefused, match="did not pin when it enrolled"):
        hijacked.login()
    assert stored(hijacked) == before  # nothing from that answer was kept


def test_a_401_renews_the_credentials_through_the_bridge(
        enrolled: Callable[..., BridgeSession], admin: CouchClient, server: Server,
        world: World) -> None:
    session = enrolled()
    ward = caseload_db(world.caseloads["a"])
    device = session.device(options=fast_options())
    assert device.sync(ward).ok
    made = device.new_record(ward, "observation", {"subject": "patient-3", **VITALS})
    first = stored(session)
    delete_user(admin, server.url, first["username"], first["password"])

    report = device.sync(ward)
    assert report.ok, report.message
    assert report.renewed_credentials and report.push.docs_written == 1
    renewed = stored(session)
    assert renewed["username"] == first["username"] and renewed["password"] != first["password"]
    assert admin.db(ward).get(made["_id"])["author"] == session.snapshot().user


def test_a_refused_renewal_stops_the_sync_with_a_clear_status(
        enrolled: Callable[..., BridgeSession], clinician: Callable[..., Clinician],
        admin: CouchClient, server: Server, world: World) -> None:
    nurse = clinician()
    session = enrolled(nurse)
    ward = caseload_db(world.caseloads["a"])
    first = stored(session)
    delete_user(admin, server.url, first["username"], first["password"])
    expired = nurse.token(issued=time.time() - 600, lifetime=60)  # past the bridge's leeway
    device = BridgeSession(session.store, token=expired).device(options=fast_options())

    report = device.sync(ward)
    assert report.state is SyncState.UNAUTHORIZED
    assert "renewing them failed" in report.message and "auth.bad_token" in report.message


def test_only_granted_databases_sync(enrolled: Callable[..., BridgeSession],
                                     world: World, server: Server) -> None:
    session = enrolled()
    other = caseload_db(world.caseloads["d"])
    session.store.add_database(other, server.url)
    report = session.device(options=fast_options()).sync(other)
    # Nothing is pulled, and a database the snapshot does not grant leaves the store
    # (mobile_stub/working_set.py; its minimisation tests are in test_working_set.py).
    assert report.pull.docs_read == 0 and not report.reached
    assert report.state is SyncState.RELEASED and "no longer grants" in report.message
    assert other not in session.store.database_names()


def test_a_new_login_keeps_the_filter_when_only_its_time_window_moved(
        enrolled: Callable[..., BridgeSession], world: World) -> None:
    session = enrolled()
    ward = caseload_db(world.caseloads["a"])
    bound = session.store.database(ward).filter_json
    # A real wait: the bridge computes not_before (one-second resolution) from its own clock,
    # which no test can pass in.
    time.sleep(1.1)
    session.login()
    issued = [db for db in stored(session)["databases"] if db["name"] == ward][0]
    assert issued["filter"]["query_params"]["not_before"] not in str(bound)
    assert session.store.database(ward).filter_json == bound  # same replication, checkpoints


def test_a_device_whose_clock_is_an_hour_out_still_reaches_the_bridge(
        enrolled: Callable[..., BridgeSession], clinician: Callable[..., Clinician]) -> None:
    nurse = clinician()
    session = enrolled(nurse)
    enrolled_as = enrolment.load(session.store)
    client = BridgeClient(enrolled_as.bridge_url, enrolled_as.device_id, enrolled_as.key,
                          token=nurse.token(), now=lambda: time.time() + 3600)
    try:
        assert client.post("/v1/credentials", {}).status == 201
    finally:
        client.close()


def session_at(store: DeviceStore, server_time: datetime) -> BridgeSession:
    """A session of ``store`` whose estimate of the server's clock reads ``server_time`` now."""
    ahead = (server_time - BridgeSession(store).server_now()).total_seconds()
    return BridgeSession(store, now=lambda: time.time() + ahead)


def test_lease_tokens_are_checked_offline(
        enrolled: Callable[..., BridgeSession], make_bridge: Callable[..., BridgeServer],
        clinician: Callable[..., Clinician], world: World, admin: CouchClient) -> None:
    brief = make_bridge(world.policy(POLICY.replace("lease_lifetime: 10m",
                                                    "lease_lifetime: 6s")))
    session = enrolled(clinician(on=brief))
    ward = caseload_db(world.caseloads["a"])
    first, second = (exclusive_record(brief, world, medication="diamorphine 5 mg",
                                      expected_count=4) for _ in range(2))
    device = session.device(options=fast_options())
    assert device.sync(ward).ok
    for record in (first, second):
        leases.change(session, device, "claim", ward, record)
    name = f"lease:{ward}/{first}"
    genuine = session.store.secrets.get(name)
    assert genuine is not None

    session.store.secrets.put(name, edited(genuine, lambda c: c.update(
        expires_at="2099-01-01T00:00:00.000000Z")))
    with pytest.raises(TokenRefused, match="lease token for .* does not verify"):
        device.complete(ward, first, "witnessed", {"counted": 4})
    session.store.secrets.put(name, Signer(Ed25519PrivateKey.generate()).sign(
        json.loads(b64url_decode(genuine.split(".")[1])), LEASE_TYPE))
    with pytest.raises(TokenRefused, match="did not pin"):
        device.complete(ward, first, "witnessed", {"counted": 4})
    session.store.secrets.put(name, genuine)
    with pytest.raises(BadRecord, match="does not complete a cd_check"):
        device.complete(ward, first, "counted")
    # A clock estimate behind the bridge's never dates a completion before its lease began.
    session.store.save_clock_offset(-30_000)
    BridgeSession(session.store).device().complete(ward, first, "witnessed", {"counted": 4})
    done = device.store.database(ward).get(first)
    assert done["completed_by"] == session.snapshot().user
    assert done["completed_at"] == done["lease"]["granted_at"]

    # The lease's end is checked offline against the session's clock: passed in, not waited for.
    lease = session.leases.verified(ward, second)
    later = session_at(session.store, parse_utc(lease["expires_at"]) + timedelta(seconds=0.5))
    with pytest.raises(PolicyRefused, match="lease on .* ended at"):
        later.device(options=fast_options()).complete(ward, second, "witnessed", {"counted": 4})
    assert device.sync(ward).ok
    assert admin.db(ward).get(first)["status"] == "witnessed"


def test_offline_edits_of_an_exclusive_record_reach_the_server_as_one_revision(
        enrolled: Callable[..., BridgeSession], bridge: BridgeServer, world: World,
        admin: CouchClient) -> None:
    """The holder counts, then completes, both offline. The server judges an edit against
    the revision it was made on and refuses one whose parent it does not hold
    (exclusive.reread: on a cluster, the sign of a copy that lags), so the second offline edit
    replaces the first on the device instead of stacking on it: one revision reaches the
    server, on top of the leased one, and is accepted. Once completed, the record is final
    on the device too."""
    session = enrolled()
    ward = caseload_db(world.caseloads["a"])
    record = exclusive_record(bridge, world)
    device = session.device(options=fast_options())
    assert device.sync(ward).ok
    leased_rev = leases.change(session, device, "claim", ward, record)["rev"]
    device.store.set_offline(True)
    device.update(ward, record, {"counted": 11, "note": "one ampoule short"})
    device.complete(ward, record, "discrepancy", {"counted": 11})
    with pytest.raises(BadRecord, match="which is final"):
        device.update(ward, record, {"note": "found it"})
    device.store.set_offline(False)

    report = device.sync(ward)
    assert report.ok and report.rejected == 0, (report.message, device.rejections(ward))
    stored = admin.db(ward).get(record, revs=True, conflicts=True)
    assert (stored["status"], stored["counted"], stored["note"]) == (
        "discrepancy", 11, "one ampoule short")
    assert "_conflicts" not in stored
    parent = f"{stored['_revisions']['start'] - 1}-{stored['_revisions']['ids'][1]}"
    assert parent == leased_rev  # made on the leased revision, which the server holds
