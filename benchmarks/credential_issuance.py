"""Benchmark: credential issuance through the bridge, beside raw ``_users`` writes.

Run on demand (not part of the test suite):

    .venv/bin/python benchmarks/credential_issuance.py [--devices 8] [--rounds 10]

Uses the server named by COUCHDB_URL / COUCHDB_USER / COUCHDB_PASSWORD, or starts an embedded
one (as the test harness does). Starts a real bridge on a free port (Werkzeug, threaded), enrols
``--devices`` devices and has them all ask for credentials at once, ``--rounds`` times each
(every issuance after the first rotates the device's credential). The peer, in the same run on
the same server with the same concurrency: the raw cost of creating a ``_users`` document (one
PUT with a password, which CouchDB hashes). Prints mean, p50 and p95 of each and their ratio,
then removes everything it created except audit entries (the trail is append-only).
"""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support import couch_server
from werkzeug.serving import make_server

from bridge.app import create_app
from carecouch.couch import CouchClient
from carecouch.credentials import CredentialStore
from carecouch.ids import caseload_db, registry_doc_id, user_doc_id
from carecouch.provisioning import Provisioner
from carecouch.registry import REGISTRY_DB
from carecouch.signing import b64url, private_key_pem, public_key_pem, raw_public, request_headers

ISSUER, AUDIENCE = "bench-idp", "bench-bridge"


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def report(label: str, latencies: list[float], wall: float) -> tuple[float, float]:
    mean, p95 = statistics.fmean(latencies), percentile(latencies, 95)
    print(f"  {label:<34} n={len(latencies):<4} mean {mean * 1000:7.1f} ms   "
          f"p50 {percentile(latencies, 50) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   "
          f"{len(latencies) / wall:6.1f}/s")
    return mean, p95


def concurrently(devices: int, rounds: int, work: Callable[[int, int], None]) -> tuple[
        list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()

    def run(device: int) -> None:
        for n in range(rounds):
            started = time.perf_counter()
            work(device, n)
            with lock:
                latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=devices) as pool:
        for future in [pool.submit(run, d) for d in range(devices)]:
            future.result()
    return latencies, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    run = uuid.uuid4().hex[:6]
    with couch_server() as (url, user, password, description), \
            tempfile.TemporaryDirectory() as tmp:
        print(f"credential issuance on {description}: {args.devices} concurrent devices x "
              f"{args.rounds} rounds")
        admin = CouchClient(url, user, password, max_connections=64)
        caseloads = [f"bench{run}-{n}" for n in range(2)]
        for caseload_id in caseloads:
            Provisioner(admin).create(caseload_id, team=f"bench-{run}")
        directory = Path(tmp)
        signing, idp = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        (directory / "signing.pem").write_bytes(private_key_pem(signing))
        (directory / "idp.pem").write_bytes(public_key_pem(idp.public_key()))
        (directory / "policy.yaml").write_text(
            f"version: 1\nrules:\n  - name: bench\n    groups: [bench]\n"
            f"    clinical_roles: [nurse]\n    teams: [bench-{run}]\n")
        bridge_user = f"carecouch-bridge-bench{run}"
        app = create_app({
            "COUCHDB_URL": url, "COUCHDB_USER": user, "COUCHDB_PASSWORD": password,
            "CARECOUCH_BRIDGE_POLICY": str(directory / "policy.yaml"),
            "CARECOUCH_BRIDGE_SIGNING_KEY_FILE": str(directory / "signing.pem"),
            "CARECOUCH_BRIDGE_IDP_KEYS_FILE": str(directory / "idp.pem"),
            "CARECOUCH_BRIDGE_IDP_ISSUER": ISSUER, "CARECOUCH_BRIDGE_IDP_AUDIENCE": AUDIENCE,
            "CARECOUCH_BRIDGE_COUCHDB_USER": bridge_user,
            "CARECOUCH_BRIDGE_COUCHDB_PASSWORD": secrets.token_urlsafe(16),
            "CARECOUCH_BRIDGE_RATE_LIMIT": "100000/60", "CARECOUCH_BRIDGE_REAP_INTERVAL": "0"})
        # Werkzeug logs every request to stderr: hundreds of lines that bury the figures.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_port}"
        http = httpx.Client(base_url=base, timeout=120,
                            limits=httpx.Limits(max_connections=args.devices * 2))
        keys = [Ed25519PrivateKey.generate() for _ in range(args.devices)]
        ids = [f"bench{run}-dev{n}" for n in range(args.devices)]
        now = int(time.time())
        tokens = [jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": f"bench{run}-u{n}",
                              "groups": ["bench"], "iat": now, "exp": now + 3600}, idp,
                             algorithm="EdDSA") for n in range(args.devices)]

        def signed(n: int, path: str, body: bytes) -> httpx.Response:
            headers = {"Authorization": f"Bearer {tokens[n]}",
                       "Content-Type": "application/json",
                       **request_headers(keys[n], ids[n], "POST", path, body)}
            return http.post(path, content=body, headers=headers)

        try:
            for n in range(args.devices):
                body = json.dumps({"device": ids[n], "public_key": b64url(
                    raw_public(keys[n].public_key()))}).encode()
                assert signed(n, "/v1/devices", body).status_code == 201

            def issue(device: int, _: int) -> None:
                response = signed(device, "/v1/credentials", b"{}")
                assert response.status_code == 201, response.text

            users = admin.db("_users")
            raw_names: list[str] = []

            def raw(device: int, n: int) -> None:
                name = f"bench{run}-raw-{device}-{n}"
                users.put({"_id": user_doc_id(name), "name": name, "type": "user",
                           "roles": [f"caseload:{c}" for c in caseloads] + ["clinical:nurse"],
                           "password": secrets.token_urlsafe(32)})
                raw_names.append(name)

            raw_latencies, raw_wall = concurrently(args.devices, args.rounds, raw)
            bridge_latencies, bridge_wall = concurrently(args.devices, args.rounds, issue)
            raw_mean, raw_p95 = report("raw _users document PUT (peer)", raw_latencies,
                                       raw_wall)
            mean, p95 = report("POST /v1/credentials (bridge)", bridge_latencies, bridge_wall)
            print(f"  ratio bridge/raw: mean {mean / raw_mean:.1f}x, p95 {p95 / raw_p95:.1f}x "
                  "(each issuance: JWT + signature checks, nonce, device, revocation and "
                  "registry reads, the _users write, audit entries)")
        finally:
            http.close()
            server.shutdown()
            app.extensions["carecouch"].close()
            _cleanup(admin, run, caseloads, bridge_user)
            admin.close()


def _cleanup(admin: CouchClient, run: str, caseloads: list[str], bridge_user: str) -> None:
    store = CredentialStore(admin)
    for session in list(store.sessions()):
        if session.user.startswith(f"bench{run}-"):
            store.delete(session.name)
    users = admin.db("_users")
    rows = users.all_docs(startkey=user_doc_id(f"bench{run}-"),
                          endkey=user_doc_id(f"bench{run}-\ufff0"))["rows"]
    rows += users.all_docs(keys=[user_doc_id(bridge_user)])["rows"]
    for row in rows:
        if "value" in row and not row["value"].get("deleted"):
            users.delete(row["id"], row["value"]["rev"])
    registry = admin.db(REGISTRY_DB)
    for row in registry.all_docs(startkey=f"device:bench{run}-",
                                 endkey=f"device:bench{run}-\ufff0")["rows"]:
        registry.delete(row["id"], row["value"]["rev"])
    for caseload_id in caseloads:
        admin.db(caseload_db(caseload_id)).destroy(missing_ok=True)
        record = registry.get_or_none(registry_doc_id(caseload_id))
        if record is not None:
            registry.delete(record["_id"], record["_rev"])


if __name__ == "__main__":
    main()
