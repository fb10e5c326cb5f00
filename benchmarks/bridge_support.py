"""A real bridge for a benchmark: caseloads, keys, a policy, a free port, and a clean-up.

``bench_bridge(url, user, password, **settings)`` provisions two caseloads of one team, starts
the bridge (Werkzeug, threaded) with a policy giving group ``bench`` the nurse role on them,
and on exit removes everything it created except audit entries (the trail is append-only).
"""

from __future__ import annotations

import logging
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from werkzeug.serving import make_server

from bridge.app import create_app
from carecouch.couch import CouchClient
from carecouch.credentials import CredentialStore
from carecouch.ids import caseload_db, registry_doc_id, user_doc_id
from carecouch.provisioning import Provisioner
from carecouch.registry import REGISTRY_DB
from carecouch.signing import private_key_pem, public_key_pem

ISSUER, AUDIENCE = "bench-idp", "bench-bridge"


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
        server = make_server("127.0.0.1", 0, app, threaded=True)
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
