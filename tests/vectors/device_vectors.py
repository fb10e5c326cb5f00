"""The device wire formats as test vectors, computed by the Python code that defines them:
request signing strings and signatures, snapshots and lease tokens (valid ones, and ones a
device must refuse), revision ids, ``changed`` stamps, record ids, the urgent selector and the
passphrase rule. ``device_vectors.json`` is this module's output, checked in;
tests/test_device_vectors.py checks the Python code still computes exactly it, and
clients/js/test/vectors.test.js that the JavaScript device does, so the two cannot drift.

Regenerate (only when a format changes on purpose): ``python -m tests.vectors.device_vectors``.
Everything is deterministic: fixed keys, times, nonces and ids (Ed25519 signatures are).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carecouch.records import load_registry, stamp_changes
from carecouch.revs import new_rev
from carecouch.signing import (
    Signer,
    b64url,
    canonical_request,
    key_id,
    raw_public,
    request_headers,
)
from carecouch.snapshot import LEASE_TYPE, SNAPSHOT_TYPE, Snapshot, SnapshotDatabase
from carecouch.working_set import urgent_selector

FILE = Path(__file__).with_name("device_vectors.json")
DEVICE_SEED = bytes(range(32, 64))
BRIDGE_SEED = bytes(range(64, 96))
OTHER_SEED = bytes(range(96, 128))
DEVICE = "tablet-4f1c"
USER = "nurse.a"
T0 = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


def _key(seed: bytes) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(seed)


def _segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())


def _requests() -> list[dict[str, Any]]:
    key = _key(DEVICE_SEED)
    cases = [("POST", "/v1/credentials", "", b"{}"),
             ("POST", "/v1/leases", "", b'{"caseload":"north-1","record":"cd_check:7"}'),
             ("GET", "/v1/devices/tablet-4f1c", "", b""),
             ("POST", "/v1/reports", "dry=1&x=%C3%A9", '{"note":"é"}'.encode())]
    out = []
    for i, (method, path, query, body) in enumerate(cases):
        timestamp, nonce = 1795361021 + i, f"q3Jm8v0kXbVh2dQf7ZcA1w{i}"
        out.append({"method": method, "path": path, "query": query,
                    "body": body.decode("utf-8"), "device": DEVICE, "timestamp": timestamp,
                    "nonce": nonce,
                    "canonical": canonical_request(method, path, query, body, DEVICE,
                                                   timestamp, nonce).decode("utf-8"),
                    "headers": request_headers(key, DEVICE, method, path, body, query=query,
                                               timestamp=timestamp, nonce=nonce)})
    return out


def _snapshot() -> Snapshot:
    north = SnapshotDatabase(
        caseload="north-1", name="caseload_north-1",
        filter={"name": "carecouch/device", "query_params": {
            "types": "observation,care_plan,cd_check", "not_before": "2026-10-23T09:00:00Z"}},
        clinical_roles=("nurse",), record_types=frozenset({"observation", "care_plan",
                                                           "cd_check"}),
        time_window_seconds=30 * 86400)
    school = SnapshotDatabase(
        caseload="school-2", name="caseload_school-2", filter={"name": "carecouch/device"},
        clinical_roles=("hca",), record_types=frozenset({"observation"}))
    return Snapshot(user=USER, device=DEVICE, username=f"{USER}~{DEVICE}", issued_at=T0,
                    credential_expires_at=T0 + timedelta(hours=8),
                    offline_until=T0 + timedelta(days=3), policy_version="1b558d231cd9da44",
                    lease_lifetime_seconds=1800, databases=(north, school), iat=1795338000)


def _lease_claims() -> dict[str, Any]:
    return {"holder": USER, "device": DEVICE, "granted_at": "2026-11-22T09:10:00.000000Z",
            "expires_at": "2026-11-22T09:40:00.000000Z", "grant": "g-5f2a",
            "iss": "carecouch-bridge", "iat": 1795338600, "caseload": "north-1",
            "db": "caseload_north-1", "record": "cd_check:7c1e", "type": "cd_check",
            "rev": "2-aa11"}


def _tokens() -> dict[str, Any]:
    bridge, other = Signer(_key(BRIDGE_SEED)), Signer(_key(OTHER_SEED))
    claims = _snapshot().to_claims()
    snapshot = bridge.sign(claims, SNAPSHOT_TYPE)
    header, payload, signature = snapshot.split(".")
    widened = {**claims, "offline_until": "2027-11-22T09:00:00.000000Z"}
    lease = bridge.sign(_lease_claims(), LEASE_TYPE)
    return {
        "bridge_jwks": {"keys": [bridge.jwk()]},
        "snapshot": {"token": snapshot, "claims": claims, "device": DEVICE,
                     "parsed": {"user": USER, "username": f"{USER}~{DEVICE}",
                                "offline_until": claims["offline_until"],
                                "databases": {db["name"]: {"caseload": db["caseload"],
                                                           "record_types": db["record_types"],
                                                           "clinical_roles": db["clinical_roles"]}
                                              for db in claims["databases"]}}},
        # Each must be refused: the message names the reason (matched as a substring).
        "refused_snapshots": [
            {"name": "payload edited, signature kept", "why": "signature",
             "token": f"{header}.{_segment(widened)}.{signature}"},
            {"name": "signed by a key the device did not pin", "why": "did not pin",
             "token": other.sign(claims, SNAPSHOT_TYPE)},
            {"name": "a lease token is not a snapshot", "why": "not an EdDSA",
             "token": lease},
            {"name": "issued for another device", "why": "another device|not this one",
             "token": bridge.sign({**claims, "device": "tablet-other"}, SNAPSHOT_TYPE)},
            {"name": "not three parts", "why": "three", "token": f"{header}.{payload}"}],
        "lease": {"token": lease, "claims": _lease_claims()},
        "refused_leases": [
            {"name": "a snapshot is not a lease token", "why": "not an EdDSA",
             "token": snapshot},
            {"name": "expiry edited", "why": "signature",
             "token": ".".join([lease.split(".")[0], _segment(
                 {**_lease_claims(), "expires_at": "2099-01-01T00:00:00.000000Z"}),
                 lease.split(".")[2]])}],
    }


def _revisions() -> dict[str, Any]:
    registry = load_registry()
    obs = {"type": "observation", "subject": "patient-0042", "pulse": 84, "temperature": 37.2,
           "on_oxygen": False, "note": "Résumé: calm 🙂", "author": USER}
    revs = []
    for parent, body, deleted in [(None, obs, False), ("1-0123456789abcdef0123456789abcdef",
                                                       {**obs, "pulse": 90}, False),
                                  ("2-ffff", {}, True),
                                  (None, {"type": "care_plan", "goals": ["a", {"b": [1, 2.5]}]},
                                   False)]:
        revs.append({"parent": parent, "body": body, "deleted": deleted,
                     "rev": new_rev(parent, body, deleted)})
    at0, at1 = "2026-11-22T09:00:00.000000Z", "2026-11-22T10:00:00.000000Z"
    plan = {"_id": "care_plan:1", "type": "care_plan", "subject": "patient-0042",
            "title": "Leg ulcer", "goals": ["heal"], "author": USER, "device": DEVICE,
            "at": at0, "clock_offset_ms": 0}
    created = stamp_changes(registry, plan, None, USER, at0)
    base = {**plan, "_rev": "1-aa", "changed": created}
    edited = {**base, "goals": ["heal", "walk"], "note": "new", "at": at1}
    del edited["title"]
    stamps = []
    for name, doc, old in [("a new care plan stamps every field", plan, None),
                           ("an edit stamps what it added, changed or removed", edited, base),
                           ("an unchanged edit keeps the stamps", {**base, "at": at1}, base),
                           ("not mergeable: no stamps", {"type": "observation", "pulse": 1},
                            None)]:
        stamps.append({"name": name, "doc": doc, "base": old, "by": USER, "at": at1 if old else at0,
                       "stamps": stamp_changes(registry, doc, old, USER,
                                               at1 if old else at0)})
    selectors = [{"query": query, "selector": urgent_selector(registry, query)} for query in [
        {}, {"types": "observation,care_plan", "not_before": "2026-10-23T09:00:00Z"},
        {"types": "observation"}, {"types": "progress_note"}]]
    return {"new_rev": revs, "stamp_changes": stamps, "urgent_selector": selectors,
            "record_ids": {"append-only": f"^observation:{USER}~{DEVICE}:[0-9a-f-]{{36}}$",
                           "other": "^care_plan:[0-9a-f-]{36}$", "owner": f"{USER}~{DEVICE}"}}


PASSPHRASES = ["ward seven blue kettle", "short", "aaaaaaaaaaaaaaaa", "abcdefghijklmnop",
               "1234567890123", "Password123456", "Correct Horse Battery Staple",
               "qwertyuiopasdf", "kettle-on-the-hob-at-3", "zzzzzzzzzzzzzzzzzzzzzy",
               "é-è-ê-ë-ā-ă-ą", "letmein!!!!!!!!2024"]


def _passphrases() -> list[dict[str, Any]]:
    from mobile_stub.passphrase import WeakPassphrase, check

    out = []
    for text in PASSPHRASES:
        try:
            check(text)
            out.append({"passphrase": text, "ok": True})
        except WeakPassphrase:
            out.append({"passphrase": text, "ok": False})
    return out


def vectors() -> dict[str, Any]:
    device = _key(DEVICE_SEED)
    return {
        "$comment": "Generated by tests/vectors/device_vectors.py from the Python code that "
                    "defines each format; checked by tests/test_device_vectors.py and "
                    "clients/js/test/vectors.test.js. Do not edit by hand.",
        "device_seed_hex": DEVICE_SEED.hex(), "device": DEVICE,
        "device_public_b64url": b64url(raw_public(device.public_key())),
        "device_key_id": key_id(device.public_key()),
        "requests": _requests(), **_tokens(), **_revisions(), "passphrases": _passphrases()}


def render() -> str:
    return json.dumps(vectors(), indent=1, ensure_ascii=False, sort_keys=True) + "\n"


if __name__ == "__main__":
    FILE.write_text(render(), encoding="utf-8")
    print(f"wrote {FILE}")
