"""A real bridge for a benchmark: caseloads, keys, a policy, a free port, and a clean-up.

``bench_bridge(url, user, password, **settings)`` provisions two caseloads of one team, starts
the bridge (Werkzeug, threaded) with a policy giving group ``bench`` the nurse role on them,
and on exit removes everything it created except audit entries (the trail is append-only).
``BenchBridge.enrol`` makes field devices (key pair, identity token, enrolment);
``BenchDevice.sign_in`` asks for credentials and makes the first replication request with
them, as a device does at the start of a shift. ``summary`` prints figures.
"""

from __future__ import annotations

import json
import logging
import secrets
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from werkzeug.serving import WSGIRequestHandler, make_server

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


def summary(label: str, latencies: list[float], wall: float | None = None) -> tuple[float, float]:
    """One line: n, mean, p50, p95 (and the rate over ``wall`` seconds); returns (mean, p95)."""
    mean, p95 = statistics.fmean(latencies), percentile(latencies, 95)
    rate = f"   {len(latencies) / wall:6.1f}/s" if wall else ""
    print(f"  {label:<44} n={len(latencies):<5} mean {mean * 1000:7.1f} ms   "
          f"p50 {percentile(latencies, 50) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms{rate}")
    return mean, p95


def hashing_settings(admin: CouchClient) -> str:
    """The server's [chttpd_auth] password hashing, as the benchmarks print it."""
    shown = []
    for key in ("iterations", "pbkdf2_prf", "upgrade_hash_on_auth"):
        response = admin.request("GET", f"_node/_local/_config/chttpd_auth/{key}", ok=(404,))
        shown.append(f"{key}={response.json() if response.status_code == 200 else 'default'}")
    return ", ".join(shown)


def concurrently(workers: int, jobs: int, work: Callable[[int], None]) -> float:
    """Run ``work(0..jobs-1)`` on ``workers`` threads; the wall time."""
    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(work, n) for n in range(jobs)]:
            future.result()
    return time.perf_counter() - began


@dataclass
class BenchDevice:
    """An enrolled field device and its clinician's identity token."""

    id: str
    key: Ed25519PrivateKey
    token: str

    def post(self, http: httpx.Client, path: str, body: bytes) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json",
                   **request_headers(self.key, self.id, "POST", path, body)}
        return http.post(path, content=body, headers=headers)

    def issue(self, http: httpx.Client) -> dict[str, Any]:
        response = self.post(http, "/v1/credentials", b"{}")
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    @staticmethod
    def first_request(couch: httpx.Client, creds: dict[str, Any]) -> None:
        """The first replication request with new credentials: the changes feed of the first
        database, through the filter the bridge named (CouchDB authenticates it from scratch)."""
        database = creds["databases"][0]
        params = {"filter": database["filter"]["name"], "since": "0", "limit": "1",
                  **database["filter"]["query_params"]}
        response = couch.get(f"{database['url']}/_changes", params=params,
                             auth=(creds["username"], creds["password"]))
        assert response.status_code == 200, response.text


@dataclass
class BenchBridge:
    base: str  # http://127.0.0.1:<port>
    app: Flask
    admin: CouchClient
    run: str  # prefix of every name the benchmark creates
    caseloads: list[str]
    idp: Ed25519PrivateKey

    def token(self, user: str, lifetime: int = 3600) -> str:
        """An identity token for ``bench<run>-<user>`` in group ``bench``."""
        now = int(time.time())
        return jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": f"bench{self.run}-{user}",
                           "groups": ["bench"], "iat": now, "exp": now + lifetime}, self.idp,
                          algorithm="EdDSA")

    def enrol(self, http: httpx.Client, count: int, *, workers: int = 8,
              lifetime: int = 3600) -> list[BenchDevice]:
        """``count`` devices, each enrolled by its own clinician (``u<n>``)."""
        devices = [BenchDevice(f"bench{self.run}-dev{n}", Ed25519PrivateKey.generate(),
                               self.token(f"u{n}", lifetime)) for n in range(count)]

        def enrol_one(n: int) -> None:
            device = devices[n]
            body = json.dumps({"device": device.id, "public_key": b64url(
                raw_public(device.key.public_key()))}).encode()
            response = device.post(http, "/v1/devices", body)
            assert response.status_code == 201, response.text

        concurrently(workers, count, enrol_one)
        return devices

    def couch_requests(self) -> int:
        """Requests the bridge has sent to CouchDB so far (its admin and its own user)."""
        services = self.app.extensions["carecouch"]
        return sum(services.admin.request_counts.values()) + sum(
            services.couch.request_counts.values())


class KeepAlive(WSGIRequestHandler):
    """HTTP/1.1: clients keep their connection, as they do with gunicorn in production
    (Werkzeug's default, HTTP/1.0, costs every request a new connection and thread)."""

    protocol_version = "HTTP/1.1"


@contextmanager
def bench_bridge(url: str, user: str, password: str, **settings: Any) -> Iterator[BenchBridge]:
    run = uuid.uuid4().hex[:6]
    admin = CouchClient(url, user, password, max_connections=64)
    caseloads = [f"bench{run}-{n}" for n in range(2)]
    bridge_user = f"carecouch-bridge-bench{run}"
    with tempfile.TemporaryDirectory() as tmp:
        for caseload_id in caseloads:
            Provisioner(admin).create(caseload_id, team=f"bench-{run}")
        directory = Path(tmp)
        signing, idp = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        (directory / "signing.pem").write_bytes(private_key_pem(signing))
        (directory / "idp.pem").write_bytes(public_key_pem(idp.public_key()))
        (directory / "policy.yaml").write_text(
            f"version: 1\nrules:\n  - name: bench\n    groups: [bench]\n"
            f"    clinical_roles: [nurse]\n    teams: [bench-{run}]\n")
        app = create_app({
            "COUCHDB_URL": url, "COUCHDB_USER": user, "COUCHDB_PASSWORD": password,
            "CARECOUCH_BRIDGE_POLICY": str(directory / "policy.yaml"),
            "CARECOUCH_BRIDGE_SIGNING_KEY_FILE": str(directory / "signing.pem"),
            "CARECOUCH_BRIDGE_IDP_KEYS_FILE": str(directory / "idp.pem"),
            "CARECOUCH_BRIDGE_IDP_ISSUER": ISSUER, "CARECOUCH_BRIDGE_IDP_AUDIENCE": AUDIENCE,
            "CARECOUCH_BRIDGE_COUCHDB_USER": bridge_user,
            "CARECOUCH_BRIDGE_COUCHDB_PASSWORD": secrets.token_urlsafe(16),
            "CARECOUCH_BRIDGE_RATE_LIMIT": "100000/60", "CARECOUCH_BRIDGE_REAP_INTERVAL": "0",
            **settings})
        # Werkzeug logs every request to stderr: hundreds of lines that bury the figures.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=KeepAlive)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            yield BenchBridge(f"http://127.0.0.1:{server.server_port}", app, admin, run,
                              caseloads, idp)
        finally:
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
