"""Exclusive records through the bridge: created by it, leased by it (as its own CouchDB user,
under the record rules), completed by the holder with bridge-issued CouchDB credentials."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from carecouch.audit import AuditLog
from carecouch.clock import format_utc
from carecouch.couch import CouchClient, Doc
from carecouch.errors import CouchForbidden
from carecouch.leases import LeaseError, Leases
from carecouch.signing import BadSignature, b64url, b64url_decode, verify_token
from tests.helpers.bridge_client import DeviceClient, assert_documented
from tests.helpers.bridges import BridgeServer, World
from tests.helpers.records import now, push, put, read, refusal

ORDER = {"order": "order-77", "description": "Start oral amoxicillin 500 mg TDS for 5 days"}


@pytest.fixture
def prescriber(bridge: BridgeServer, world: World) -> DeviceClient:
    return bridge.enrolled_device(world.user(f"gp{uuid.uuid4().hex[:4]}"),
                                  [world.group("prescribers")])


def create_order(device: DeviceClient, world: World) -> Doc:
    response = device.call("POST", "/v1/records", {
        "caseload": world.caseloads["a"], "type": "order_signoff", "subject": "patient-001",
        "fields": ORDER})
    assert response.status_code == 201, response.text
    assert_documented(device.base_url, "/v1/records", response)
    record: Doc = response.json()["record"]
    return record


def claim(device: DeviceClient, world: World, record_id: str) -> httpx.Response:
    response = device.call("POST", "/v1/leases", {"caseload": world.caseloads["a"],
                                                  "record": record_id})
    assert_documented(device.base_url, "/v1/leases", response)
    return response


def bridge_key(bridge: BridgeServer) -> Any:
    return jwt.PyJWK(httpx.get(bridge.url + "/v1/keys").json()["keys"][0]).key


def test_the_bridge_creates_exclusive_records_in_their_initial_status(
        bridge: BridgeServer, world: World, prescriber: DeviceClient) -> None:
    record = create_order(prescriber, world)
    stored = world.admin.db(f"caseload_{world.caseloads['a']}").get(record["_id"])
    assert stored["status"] == "open" and "lease" not in stored
    assert stored["author"] == bridge.services.settings.bridge_user
    entry = AuditLog(world.admin, "t").entries(action="record.create")[-1]
    assert entry["actor"] == prescriber.user and entry["details"]["record"] == \
        record["_id"]
    # Not for other record types, and never born completed.
    for body, code in (({"type": "observation", "fields": {}}, "record.not_exclusive"),
                       ({"type": "order_signoff", "fields": {**ORDER, "status": "signed"}},
                        "request.bad_field"),
                       ({"type": "order_signoff", "fields": {"order": "x"}}, "record.refused")):
        response = prescriber.call("POST", "/v1/records", {
            "caseload": world.caseloads["a"], "subject": "patient-001", **body})
        assert response.json()["error"] == code, response.text



def test_claim_complete_with_the_lease_and_the_token_verifies(
        bridge: BridgeServer, world: World, prescriber: DeviceClient, server: Any) -> None:
    record = create_order(prescriber, world)
    response = claim(prescriber, world, record["_id"])
    assert response.status_code == 201, response.text
    body = response.json()
    lease = body["lease"]
    user = prescriber.user
    assert (lease["holder"], lease["device"]) == (user, prescriber.device_id)
    claims = jwt.decode(body["token"], bridge_key(bridge), algorithms=["EdDSA"])
    assert claims["grant"] == lease["grant"] and claims["record"] == record["_id"]
    assert claims["rev"] == body["rev"] and claims["expires_at"] == lease["expires_at"]
    # The holder completes it on CouchDB with bridge-issued credentials.
    creds = prescriber.credentials()
    with CouchClient(server.url, creds["username"], creds["password"], retries=0) as client:
        db = client.db(f"caseload_{world.caseloads['a']}")
        doc = read(db, record["_id"])
        put(db, {**doc, "status": "signed", "completed_by": user, "completed_at": now(),
                 "author": user, "device": prescriber.device_id, "at": now()}, doc)
    assert read(world.admin.db(f"caseload_{world.caseloads['a']}"),
                record["_id"])["status"] == "signed"
    done = claim(prescriber, world, record["_id"])
    assert (done.status_code, done.json()["error"]) == (409, "lease.completed")


def test_a_taken_lease_is_409_with_the_holder(bridge: BridgeServer, world: World,
                                              prescriber: DeviceClient) -> None:
    record = create_order(prescriber, world)
    first = claim(prescriber, world, record["_id"]).json()
    other = bridge.enrolled_device(world.user("gp-other"), [world.group("prescribers")])
    response = claim(other, world, record["_id"])
    assert response.status_code == 409
    assert response.json()["error"] == "lease.taken"
    assert response.json()["details"]["holder"] == {
        k: first["lease"][k] for k in ("holder", "device", "granted_at", "expires_at")}
    # Claiming again as the holder changes nothing and answers the same lease.
    again = claim(prescriber, world, record["_id"])
    assert again.status_code == 200 and again.json()["lease"] == first["lease"]


def test_renew_extends_and_release_frees(bridge: BridgeServer, world: World,
                                         prescriber: DeviceClient) -> None:
    record = create_order(prescriber, world)
    lease = claim(prescriber, world, record["_id"]).json()["lease"]
    body = {"caseload": world.caseloads["a"], "record": record["_id"], "grant": lease["grant"]}
    renewed = prescriber.call("POST", "/v1/leases/renew", body)
    assert renewed.status_code == 200, renewed.text
    assert_documented(bridge.url, "/v1/leases/renew", renewed)
    new = renewed.json()["lease"]
    assert new["grant"] == lease["grant"] and new["granted_at"] == lease["granted_at"]
    assert new["expires_at"] >= lease["expires_at"]
    wrong = prescriber.call("POST", "/v1/leases/renew", {**body, "grant": "0" * 32})
    assert (wrong.status_code, wrong.json()["error"]) == (409, "lease.not_held")
    released = prescriber.call("POST", "/v1/leases/release", body)
    assert released.status_code == 200 and released.json()["lease"] is None
    assert_documented(bridge.url, "/v1/leases/release", released)
    stored = world.admin.db(f"caseload_{world.caseloads['a']}").get(record["_id"])
    assert "lease" not in stored
    other = bridge.enrolled_device(world.user("gp-next"), [world.group("prescribers")])
    assert claim(other, world, record["_id"]).status_code == 201
    actions = [e["action"] for e in AuditLog(world.admin, "t").entries(
        subject=world.caseloads["a"]) if e["details"].get("record") == record["_id"]]
    assert actions == ["record.create", "lease.claim", "lease.renew", "lease.release",
                       "lease.claim"]


def test_a_tampered_lease_token_is_detected(bridge: BridgeServer, world: World,
                                            prescriber: DeviceClient) -> None:
    record = create_order(prescriber, world)
    token = claim(prescriber, world, record["_id"]).json()["token"]
    header, payload, signature = token.split(".")
    claims = json.loads(b64url_decode(payload))
    claims["expires_at"] = format_utc(datetime.now(UTC) + timedelta(days=30))
    forged = ".".join([header, b64url(json.dumps(claims).encode()), signature])
    with pytest.raises(BadSignature):
        verify_token(forged, bridge_key(bridge), "carecouch-lease+jws")
    assert verify_token(token, bridge_key(bridge), "carecouch-lease+jws")["record"] == \
        record["_id"]


def test_leases_need_the_caseload_and_the_record_type(bridge: BridgeServer, world: World,
                                                      prescriber: DeviceClient) -> None:
    record = create_order(prescriber, world)
    nurse = bridge.enrolled_device(world.user("nurse-lease"), [world.group("nurses")])
    response = claim(nurse, world, record["_id"])  # nurses do not sign off orders
    assert (response.status_code, response.json()["error"]) == (403, "lease.type_not_granted")
    elsewhere = prescriber.call("POST", "/v1/leases", {"caseload": world.caseloads["b"],
                                                      "record": record["_id"]})
    assert elsewhere.json()["error"] == "lease.caseload_not_granted"
    missing = prescriber.call("POST", "/v1/leases", {"caseload": world.caseloads["a"],
                                                    "record": f"order_signoff:{uuid.uuid4()}"})
    assert (missing.status_code, missing.json()["error"]) == (404, "lease.no_record")


def _tie(bridge: BridgeServer, world: World, prescriber: DeviceClient,
         other_first: bool) -> tuple[Leases, Doc, dict[str, Any], dict[str, Any]]:
    """Two leases written concurrently on the same revision, as two cluster nodes can
    accept them: the bridge's (through the API) and a sibling pushed beside it."""
    record = create_order(prescriber, world)
    db = world.admin.db(f"caseload_{world.caseloads['a']}")
    base = read(db, record["_id"])
    mine = claim(prescriber, world, record["_id"]).json()["lease"]
    offset = -5 if other_first else 5
    theirs = {"holder": "gp-rival", "device": "tablet-r",
              "granted_at": format_utc(datetime.now(UTC) + timedelta(seconds=offset)),
              "expires_at": format_utc(datetime.now(UTC) + timedelta(minutes=10)),
              "grant": uuid.uuid4().hex}
    push(db, {**base, "lease": theirs}, base)  # admin: the other node's replicated write
    assert db.get(record["_id"], conflicts=True).get("_conflicts")
    leases = Leases(bridge.services.couch.db(db.name), bridge.services.records)
    return leases, record, mine, theirs


def test_a_tie_on_a_cluster_is_settled_for_the_earliest_lease(
        bridge: BridgeServer, world: World, prescriber: DeviceClient) -> None:
    leases, record, mine, theirs = _tie(bridge, world, prescriber, other_first=True)
    with pytest.raises(LeaseError) as info:
        leases.settle(record["_id"], mine, datetime.now(UTC))
    assert info.value.code == "lease.taken"
    db = world.admin.db(f"caseload_{world.caseloads['a']}")
    winner = db.get(record["_id"], conflicts=True)
    assert winner["lease"] == theirs  # CouchDB's winning revision carries the settled lease
    losers = [leaf["ok"] for leaf in db.open_revs(record["_id"], "all")
              if leaf["ok"]["_rev"] != winner["_rev"]]
    assert losers and all("lease" not in leaf for leaf in losers)
    # Whoever looks next (any bridge instance) sees the same outcome.
    response = claim(prescriber, world, record["_id"])
    assert response.status_code == 409 and response.json()["details"]["holder"]["holder"] == \
        "gp-rival"


def test_a_tie_won_by_the_bridge_keeps_its_lease_and_the_loser_cannot_complete(
        bridge: BridgeServer, world: World, prescriber: DeviceClient,
        make_user: Any) -> None:
    leases, record, mine, theirs = _tie(bridge, world, prescriber, other_first=False)
    granted = leases.settle(record["_id"], mine, datetime.now(UTC))
    assert granted.lease == mine and granted.settled == 1
    db = world.admin.db(f"caseload_{world.caseloads['a']}")
    assert db.get(record["_id"])["lease"] == mine
    loser = [leaf["ok"] for leaf in db.open_revs(record["_id"], "all", revs=True)
             if leaf["ok"]["_rev"] != db.get(record["_id"])["_rev"]][0]
    rival = make_user(["clinical:prescriber", f"caseload:{world.caseloads['a']}"],
                      name="gp-rival~tablet-r")
    with pytest.raises(CouchForbidden) as info:  # the losing branch holds no lease any more
        push(rival.client.db(db.name), {**loser, "status": "signed", "completed_by": "gp-rival",
                                        "completed_at": now(), "author": "gp-rival",
                                        "device": "tablet-r", "at": now()}, loser)
    assert refusal(info.value) == "exclusive.not_holder"


def test_a_claim_through_the_api_reads_back_and_yields_to_an_earlier_lease_on_a_branch(
        bridge: BridgeServer, world: World, prescriber: DeviceClient) -> None:
    """Another node accepted an earlier claim on a branch that is not (yet) CouchDB's winner:
    the bridge's own claim lands on the winner, its read-back sees both, and it answers 409
    with the earlier holder, leaving that lease the only one."""
    record = create_order(prescriber, world)
    db = world.admin.db(f"caseload_{world.caseloads['a']}")
    base = read(db, record["_id"])
    theirs = {"holder": "gp-rival", "device": "tablet-r",
              "granted_at": format_utc(datetime.now(UTC) - timedelta(seconds=5)),
              "expires_at": format_utc(datetime.now(UTC) + timedelta(minutes=10)),
              "grant": uuid.uuid4().hex}
    push(db, {**base, "lease": theirs}, base)  # the other node's claim, generation 2
    longer = read(db, record["_id"], push(db, base, base))
    push(db, longer, longer)  # an unleased branch of generation 3: CouchDB's winner
    assert "lease" not in db.get(record["_id"])
    response = claim(prescriber, world, record["_id"])
    assert response.status_code == 409, response.text
    assert response.json()["error"] == "lease.taken"
    assert response.json()["details"]["holder"]["holder"] == "gp-rival"
    leaves = [leaf["ok"] for leaf in db.open_revs(record["_id"], "all")]
    assert [leaf["lease"] for leaf in leaves if "lease" in leaf] == [theirs]
    assert db.get(record["_id"])["lease"] == theirs


def test_renewal_needs_the_record_type_the_policy_grants_now(
        make_bridge: Any, world: World) -> None:
    bridge = make_bridge()
    device = bridge.enrolled_device(world.user("gp-renew"), [world.group("prescribers")])
    record = create_order(device, world)
    lease = claim(device, world, record["_id"]).json()["lease"]
    # IT narrows the prescribers rule: they no longer complete order sign-offs.
    bridge.write_policy(world.policy().replace("clinical_roles: [prescriber]",
                                               "clinical_roles: [hca]"))
    renewed = device.call("POST", "/v1/leases/renew", {
        "caseload": world.caseloads["a"], "record": record["_id"], "grant": lease["grant"]})
    assert (renewed.status_code, renewed.json()["error"]) == (403, "lease.type_not_granted")


def test_a_regrant_that_grew_beside_a_completion_is_refused_and_loses_its_lease(
        bridge: BridgeServer, world: World, prescriber: DeviceClient, server: Any) -> None:
    """On a cluster a copy that has not yet received a completion can accept a lease written
    on the revision before it (docs/record-rules.md, "On a cluster"); internal replication then
    leaves the completed branch beside a leased one. Here the leased branch sorts first, so it
    is CouchDB's winner: every reader sees an open record leased to B. The bridge still treats
    the record as completed — it never hands B (or anyone) that lease again and removes it —
    and leaves both branches for supervisory review."""
    record = create_order(prescriber, world)
    db = world.admin.db(f"caseload_{world.caseloads['a']}")
    granted = claim(prescriber, world, record["_id"]).json()
    creds = prescriber.credentials()
    with CouchClient(server.url, creds["username"], creds["password"], retries=0) as client:
        doc = read(client.db(db.name), record["_id"])
        put(client.db(db.name), {**doc, "status": "signed", "completed_by": prescriber.user,
                                 "completed_at": now(), "author": prescriber.user,
                                 "device": prescriber.device_id, "at": now()}, doc)
    completed = db.get(record["_id"])
    other = bridge.enrolled_device(world.user("gp-late"), [world.group("prescribers")])
    theirs = {"holder": other.user, "device": other.device_id, "granted_at": now(),
              "expires_at": now(10), "grant": uuid.uuid4().hex}
    leased = read(db, record["_id"], granted["rev"])
    regrant = {**leased, "lease": theirs, "_rev": "3-" + "f" * 32,
               "_revisions": {"start": 3, "ids": ["f" * 32, *leased["_revisions"]["ids"]]}}
    db.bulk_docs([regrant], new_edits=False)  # as internal replication writes it
    assert db.get(record["_id"])["lease"] == theirs  # the leased branch is the winner

    for response in (claim(other, world, record["_id"]),
                     other.call("POST", "/v1/leases/renew", {
                         "caseload": world.caseloads["a"], "record": record["_id"],
                         "grant": theirs["grant"]}),
                     claim(prescriber, world, record["_id"])):
        assert (response.status_code, response.json()["error"]) == (409, "lease.completed")
        assert "token" not in response.json()
    leaves = {leaf["ok"]["_rev"]: leaf["ok"] for leaf in db.open_revs(record["_id"], "all")}
    assert leaves[completed["_rev"]] == completed  # the completion, untouched
    assert [leaf for leaf in leaves.values()
            if leaf["status"] == "open" and "lease" in leaf] == []  # no lease left to use
    assert len(leaves) == 2  # both branches stay for review
