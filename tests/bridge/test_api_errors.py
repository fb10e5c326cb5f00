"""Every error path answers the one JSON error shape with a stable code and a 4xx: bad
routes, bad bodies, bad or missing identity tokens, bad, stale and replayed device signatures,
and rate limits."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from tests.bridge.support import assert_error
from tests.helpers.bridge_client import AUDIENCE, ISSUER, DeviceClient, nonce
from tests.helpers.bridges import BridgeServer, World


def test_unknown_route_and_wrong_method(bridge: BridgeServer) -> None:
    assert_error(httpx.get(bridge.url + "/v1/nothing"), 404, "request.not_found")
    response = httpx.get(bridge.url + "/v1/credentials")
    assert_error(response, 405, "request.method_not_allowed")
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize(("raw", "code"), [
    (b"{not json", "request.bad_json"),
    (b"[1, 2]", "request.bad_json"),
    (b"\xff\xfe", "request.bad_json"),
    (b'{"surprise": 1}', "request.unknown_field"),
    (b"[" * 50_000, "request.bad_json"),
    # What Python's json reads but JSON (and CouchDB) does not: before these were refused,
    # they reached CouchDB inside a record's fields and came back as a 502.
    (b'{"x": NaN}', "request.bad_json"),
    (b'{"x": -Infinity}', "request.bad_json"),
    (b'{"x": 1e400}', "request.bad_json"),
    (b'{"x": 123456789012345678901234567890}', "request.bad_json"),
    (b'{"x": "\\ud800"}', "request.bad_json"),
    (b'{"x": 1, "x": 2}', "request.bad_json"),
], ids=["broken", "array", "not-utf8", "unknown-field", "deep", "nan", "infinity",
        "too-large", "huge-int", "lone-surrogate", "repeated-key"])
def test_bad_bodies(nurse: DeviceClient, raw: bytes, code: str) -> None:
    assert_error(nurse.call("POST", "/v1/credentials", raw=raw), 400, code)


def test_record_fields_json_cannot_hold_are_a_400_not_a_502(
        bridge: BridgeServer, world: World) -> None:
    prescriber = bridge.enrolled_device(world.user("gp-json"), [world.group("prescribers")])
    raw = (b'{"caseload": "%s", "type": "order_signoff", "subject": "patient-001", '
           b'"fields": {"order": "o-1", "description": "d", "dose_mg": NaN}}'
           % world.caseloads["a"].encode())
    assert_error(prescriber.call("POST", "/v1/records", raw=raw), 400, "request.bad_json")


def test_too_large_body(nurse: DeviceClient) -> None:
    response = nurse.call("POST", "/v1/credentials", raw=b'{"x": "' + b"a" * 70_000 + b'"}')
    assert_error(response, 413, "request.too_large")


def _other_key_token(world: World, **claims: Any) -> str:
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": world.user("nurse"), "groups": [],
               "iat": int(time.time()), "exp": int(time.time()) + 600, **claims}
    return jwt.encode(payload, Ed25519PrivateKey.generate(), algorithm="EdDSA")


@pytest.mark.parametrize("make_token", [
    lambda b, w: "not-a-jwt",
    lambda b, w: b.idp.token(w.user("nurse"), lifetime=-120),  # expired
    lambda b, w: b.idp.token(w.user("nurse"), aud="another-app"),
    lambda b, w: b.idp.token(w.user("nurse"), iss="https://evil.example"),
    lambda b, w: _other_key_token(w),
    lambda b, w: jwt.encode({"sub": w.user("nurse"), "iss": ISSUER, "aud": AUDIENCE,
                             "iat": int(time.time()), "exp": int(time.time()) + 60},
                            None, algorithm="none"),
    lambda b, w: jwt.encode({"sub": w.user("nurse"), "iss": ISSUER, "aud": AUDIENCE,
                             "iat": int(time.time()), "exp": int(time.time()) + 60},
                            "a-shared-secret-that-is-long-enough-for-hs256", algorithm="HS256"),
    lambda b, w: jwt.encode({"sub": w.user("nurse"), "iss": ISSUER, "aud": AUDIENCE,
                             "exp": int(time.time()) + 60},
                            generate_private_key(65537, 2048), algorithm="RS256"),
], ids=["garbage", "expired", "wrong-audience", "wrong-issuer", "unknown-key", "alg-none",
        "hmac", "rsa-unknown"])
def test_bad_identity_tokens(bridge: BridgeServer, world: World, nurse: DeviceClient,
                             make_token: Callable[[BridgeServer, World], str]) -> None:
    response = nurse.call("POST", "/v1/credentials", {}, token=make_token(bridge, world))
    assert_error(response, 401, "auth.bad_token")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_missing_token(bridge: BridgeServer, nurse: DeviceClient) -> None:
    assert_error(httpx.get(bridge.url + "/v1/policy"), 401, "auth.missing_token")
    # A device's request is checked for its signature first (a revoked device must hear so
    # whatever its token), then for the clinician's token.
    assert_error(httpx.post(bridge.url + "/v1/credentials", json={}), 401,
                 "device.signature_required")
    assert_error(nurse.call("POST", "/v1/credentials", {}, token=False), 401,
                 "auth.missing_token")


@pytest.mark.parametrize("user", ["alice~tablet", "alice\n", "org.couchdb.user:x"],
                         ids=["session-name", "trailing-newline", "colon"])
def test_unusable_user_name(bridge: BridgeServer, nurse: DeviceClient, user: str) -> None:
    token = bridge.idp.token(user)  # would forge or bend a CouchDB user name
    assert_error(nurse.call("GET", "/v1/policy", token=token, signed=False), 403,
                 "auth.bad_user")


def test_ids_with_a_trailing_newline_are_refused(bridge: BridgeServer, world: World,
                                                 nurse: DeviceClient) -> None:
    caseload = nurse.call("POST", "/v1/leases", {"caseload": world.caseloads["a"] + "\n",
                                                 "record": "order_signoff:abcdefgh"})
    assert_error(caseload, 400, "request.bad_field")
    record = nurse.call("POST", "/v1/leases", {"caseload": world.caseloads["a"],
                                               "record": "order_signoff:abcdefgh\n"})
    assert_error(record, 400, "request.bad_field")
    reserved = nurse.call("POST", "/v1/leases", {"caseload": world.caseloads["a"],
                                                 "record": "_design:abcdefgh"})
    assert_error(reserved, 400, "request.bad_field")


def test_unsigned_request(nurse: DeviceClient) -> None:
    assert_error(nurse.call("POST", "/v1/credentials", {}, signed=False), 401,
                 "device.signature_required")


def test_signature_by_another_key(nurse: DeviceClient) -> None:
    response = nurse.call("POST", "/v1/credentials", {}, signer=Ed25519PrivateKey.generate())
    assert_error(response, 401, "device.bad_signature")


def test_body_changed_after_signing(nurse: DeviceClient) -> None:
    from carecouch.signing import request_headers

    headers = request_headers(nurse.key, nurse.device_id, "POST", "/v1/credentials", b"{}")
    response = httpx.post(nurse.base_url + "/v1/credentials", content=b'{ }', headers={
        **headers, "Authorization": f"Bearer {nurse.token}"})
    assert_error(response, 401, "device.bad_signature")


def test_stale_timestamp(nurse: DeviceClient) -> None:
    response = nurse.call("POST", "/v1/credentials", {}, timestamp=int(time.time()) - 3600)
    body = assert_error(response, 401, "device.stale_timestamp")
    assert abs(body["details"]["server_time"] - time.time()) < 5


def test_replayed_request_is_refused_on_every_instance(
        nurse: DeviceClient, make_bridge: Callable[..., BridgeServer]) -> None:
    stamp, once = int(time.time()), nonce()
    first = nurse.call("POST", "/v1/credentials", {}, timestamp=stamp, nonce=once)
    assert first.status_code == 201, first.text
    replay = nurse.call("POST", "/v1/credentials", {}, timestamp=stamp, nonce=once)
    assert_error(replay, 401, "device.replayed")
    # A second bridge instance (behind the same load balancer) agrees: nonces are in CouchDB.
    other = make_bridge()
    at_other = DeviceClient(other.url, nurse.token, nurse.device_id, nurse.key).call(
        "POST", "/v1/credentials", {}, timestamp=stamp, nonce=once)
    assert_error(at_other, 401, "device.replayed")


def test_unknown_device(bridge: BridgeServer, world: World) -> None:
    stranger = bridge.device(world.user("nurse"), [world.group("nurses")])  # never enrolled
    assert_error(stranger.call("POST", "/v1/credentials", {}), 401, "device.unknown")


def test_enrolment_must_be_signed_by_the_key_it_enrols(bridge: BridgeServer,
                                                       world: World) -> None:
    device = bridge.device(world.user("nurse"), [world.group("nurses")])
    body = {"device": device.device_id, "public_key": device.public_key}
    response = device.call("POST", "/v1/devices", body, signer=Ed25519PrivateKey.generate())
    assert_error(response, 401, "device.bad_signature")
    assert device.call("POST", "/v1/devices", body).status_code == 201
    again = device.call("POST", "/v1/devices", body)
    assert_error(again, 409, "device.exists")
    bad_key = device.call("POST", "/v1/devices", {**body, "public_key": "AAAA"})
    assert_error(bad_key, 400, "request.bad_field")


def test_rate_limit_per_user_and_device(make_bridge: Callable[..., BridgeServer],
                                        world: World) -> None:
    bridge = make_bridge(CARECOUCH_BRIDGE_RATE_LIMIT="3/60")
    device = bridge.device(world.user("nurse"), [world.group("nurses")])
    answers = [device.call("GET", "/v1/policy", signed=False) for _ in range(4)]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    body = assert_error(answers[3], 429, "rate_limited")
    assert int(answers[3].headers["Retry-After"]) == body["details"]["retry_after"] >= 1
    # Another user is not affected by the first one's bucket.
    other = bridge.device(world.user("nurse8"), [world.group("nurses")])
    assert other.call("GET", "/v1/policy", signed=False).status_code == 200


def test_device_rate_limit(make_bridge: Callable[..., BridgeServer], world: World) -> None:
    bridge = make_bridge(CARECOUCH_BRIDGE_RATE_LIMIT="2/60")
    device = bridge.device(world.user("nurse9"), [world.group("nurses")])
    device.enrol()  # spends one of the device's two tokens
    device.token = bridge.idp.token(world.user("nurse10"), [world.group("nurses")])
    assert device.credentials()["username"].endswith(device.device_id)
    device.token = bridge.idp.token(world.user("nurse11"), [world.group("nurses")])
    assert_error(device.call("POST", "/v1/credentials", {}), 429, "rate_limited")


def test_health_and_keys_need_no_identity(bridge: BridgeServer) -> None:
    assert httpx.get(bridge.url + "/healthz").json()["status"] == "ok"
    keys = httpx.get(bridge.url + "/v1/keys").json()["keys"]
    assert keys[0]["kty"] == "OKP" and keys[0]["crv"] == "Ed25519"
    assert httpx.get(bridge.url + "/openapi.json").json()["openapi"].startswith("3.")
