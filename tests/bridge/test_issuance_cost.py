"""What an issuance costs CouchDB: device-session users are written already hashed (CouchDB
hashes nothing and, with deploy/couchdb.ini, rehashes nothing at login), and a sign-in sends a
fixed, small number of requests, none of which reads more of the registry than the caller's
own device, revocation record and grantable caseloads."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from carecouch.couch import CouchClient
from carecouch.credentials import HASH_ITERATIONS
from carecouch.ids import user_doc_id
from carecouch.registry import REGISTRY_DB, CaseloadRegistry
from tests.helpers.bridge_client import DeviceClient
from tests.helpers.bridges import BridgeServer, World
from tests.helpers.protocol import call

# By request method, every one from the bridge's admin client. A rotation: device + revocation
# record (POST _all_docs), nonce (PUT), the caseloads of the rule's team (POST view), the user
# document read and written (GET, PUT), device + revocation again after the write (POST
# _all_docs), audit (POST _bulk_docs).
ROTATION = Counter({"POST": 4, "PUT": 2, "GET": 1})
# A device's first sign-in: the holder is recorded (PUT) and the user created without a read.
FIRST = Counter({"POST": 4, "PUT": 3})


def user_doc(admin: CouchClient, body: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = admin.db("_users").get(user_doc_id(body["username"]))
    return doc


def test_the_couchdb_user_is_written_hashed_never_with_the_password(
        admin: CouchClient, nurse: DeviceClient) -> None:
    body = nurse.credentials()
    doc = user_doc(admin, body)
    assert "password" not in doc
    assert (doc["password_scheme"], doc["pbkdf2_prf"], doc["iterations"]) == (
        "pbkdf2", "sha256", HASH_ITERATIONS)
    assert doc["derived_key"] == hashlib.pbkdf2_hmac(
        "sha256", body["password"].encode(), doc["salt"].encode(), HASH_ITERATIONS).hex()
    again = nurse.credentials()
    rotated = user_doc(admin, again)
    assert rotated["salt"] != doc["salt"]  # the server's password cache is keyed by salt
    assert again["password"] != body["password"]


def test_a_login_leaves_the_users_hash_as_the_bridge_wrote_it(
        admin: CouchClient, nurse: DeviceClient, server: Any) -> None:
    # deploy/couchdb.ini: upgrade_hash_on_auth = false (a server set otherwise rehashes it)
    status, value = call(admin, "GET", "_node/_local/_config/chttpd_auth/upgrade_hash_on_auth")
    if status != 200 or value != "false":
        pytest.skip("this server upgrades hashes at login (upgrade_hash_on_auth is not false)")
    body = nurse.credentials()
    before = user_doc(admin, body)
    with CouchClient(server.url, body["username"], body["password"], retries=0) as device:
        assert device.session()["userCtx"]["name"] == body["username"]
    time.sleep(1)  # CouchDB would upgrade asynchronously, right after the login
    assert user_doc(admin, body)["_rev"] == before["_rev"]


def sign_in_requests(bridge: BridgeServer, device: DeviceClient) -> Counter[str]:
    counts = bridge.services.admin.request_counts
    before = counts.copy()
    device.credentials()
    return counts - before


@pytest.fixture
def crowded_registry(admin: CouchClient) -> Iterator[int]:
    """300 more caseload records (other teams) and 300 more devices in the registry."""
    tag = f"crowd{uuid.uuid4().hex[:8]}"
    registry = admin.db(REGISTRY_DB)
    docs: list[dict[str, Any]] = [
        {"_id": f"caseload:{tag}-{n}", "type": "caseload", "id": f"{tag}-{n}",
         "team": f"{tag}-team", "status": "active", "name": "filler", "design_docs": {}}
        for n in range(300)]
    docs += [{"_id": f"device:{tag}-{n}", "type": "device", "id": f"{tag}-{n}",
              "public_key": "A" * 43, "status": "active", "enrolled_by": tag}
             for n in range(300)]
    written = registry.bulk_docs(docs)
    yield len(docs)
    registry.bulk_docs([{"_id": d["_id"], "_rev": r["rev"], "_deleted": True}
                        for d, r in zip(docs, written, strict=True)])


def test_a_sign_in_costs_the_same_requests_however_full_the_registry(
        bridge: BridgeServer, world: World, admin: CouchClient,
        crowded_registry: int) -> None:
    device = bridge.enrolled_device(world.user("nurse"), [world.group("nurses")])
    assert sign_in_requests(bridge, device) == FIRST
    assert sign_in_requests(bridge, device) == ROTATION
    # What it reads of the registry is this user's: their rules' team and caseload ids.
    caseloads = CaseloadRegistry(admin).caseloads_for([world.caseloads["c"]], [f"ward-{world.run}"])
    assert sorted(caseloads) == sorted(world.caseloads[x] for x in "abc")
