"""A real bridge on a real port, in front of the test CouchDB server (a fixtures plugin,
registered once in tests/conftest.py: the bridge, device and fleet tests all use it).

``world`` provisions four caseloads for the session (two on one team); ``bridge`` runs the
bridge (Werkzeug, in a thread) with the standard test policy; ``make_bridge`` starts more with
their own policy or settings. Everything the session creates on the server — caseloads, the
bridge's CouchDB user, device-session users, device and revocation records — carries the run
id and is removed at the end (the audit trail stays: it is append-only).
"""

from __future__ import annotations

import os
import secrets
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

from bridge.app import create_app
from bridge.services import Services
from carecouch.couch import CouchClient
from carecouch.credentials import CredentialStore
from carecouch.ids import USERS_DB, caseload_db, registry_doc_id, user_doc_id
from carecouch.provisioning import Provisioner
from carecouch.registry import REGISTRY_DB
from carecouch.signing import private_key_pem, public_key_pem
from tests.helpers.bridge_client import AUDIENCE, ISSUER, DeviceClient, Idp

POLICY = """\
version: 1
defaults:
  credential_lifetime: 1h
  offline_grace: 2d
  lease_lifetime: 10m
  filter:
    time_window: 30d
admins:
  groups: [it-{run}]
break_glass:
  groups: [senior-{run}]
  lifetime: 15m
rules:
  - name: ward nurses
    groups: [nurses-{run}]
    clinical_roles: [nurse]
    teams: [ward-{run}]
  - name: school healthcare assistants
    users: [hca-{run}]
    clinical_roles: [hca]
    caseloads: [{c}]
    record_types: [observation]
    filter:
      types: [observation, task]
      pinned_subjects: [patient-007]
  - name: prescribers
    groups: [prescribers-{run}]
    clinical_roles: [prescriber]
    caseloads: [{a}]
  - name: bank healthcare assistant
    users: [dual-{run}]
    clinical_roles: [hca]
    caseloads: [{c}]
  - name: reviewers
    users: [reviewer-{run}]
    clinical_roles: [supervisor]
    resolver: true
    caseloads: [{c}]
"""


@dataclass
class World:
    run: str
    caseloads: dict[str, str]  # letter -> caseload id
    admin: CouchClient

    def user(self, role: str) -> str:
        return f"{role}-{self.run}"

    def group(self, name: str) -> str:
        return f"{name}-{self.run}"

    def policy(self, template: str = POLICY) -> str:
        return template.format(run=self.run, **self.caseloads)


@dataclass
class BridgeEnv:
    keys: Path
    idp: Idp
    signing_key: Ed25519PrivateKey
    couch_user: str
    couch_password: str


@dataclass
class BridgeServer:
    url: str
    app: Flask
    policy_file: Path
    idp: Idp

    @property
    def services(self) -> Services:
        found: Services = self.app.extensions["carecouch"]
        return found

    def write_policy(self, text: str) -> None:
        before = self.policy_file.stat().st_mtime_ns
        self.policy_file.write_text(text)
        os.utime(self.policy_file, ns=(before + 10**9, before + 10**9))  # a visible change

    def device(self, user: str, groups: list[str] | None = None) -> DeviceClient:
        return DeviceClient(self.url, self.idp.token(user, groups))

    def enrolled_device(self, user: str, groups: list[str] | None = None) -> DeviceClient:
        """A device of ``user`` that has enrolled its key with this bridge."""
        device = self.device(user, groups)
        device.enrol()
        return device


@pytest.fixture(scope="session")
def world(admin: CouchClient) -> Iterator[World]:
    run = uuid.uuid4().hex[:8]
    ids = {letter: f"b{run}-{letter}" for letter in "abcd"}
    teams = {"a": f"ward-{run}", "b": f"ward-{run}", "c": f"school-{run}", "d": f"other-{run}"}
    provisioner = Provisioner(admin)
    for letter, caseload_id in ids.items():
        provisioner.create(caseload_id, name=f"Bridge test {letter}", team=teams[letter])
    yield World(run, ids, admin)
    _cleanup(admin, run, list(ids.values()))


def _cleanup(admin: CouchClient, run: str, caseloads: list[str]) -> None:
    for session in list(CredentialStore(admin).sessions()):
        if session.user.endswith(f"-{run}"):
            CredentialStore(admin).delete(session.name)
    users = admin.db(USERS_DB)
    for row in users.all_docs(startkey=user_doc_id(f"carecouch-bridge-{run}"),
                              endkey=user_doc_id(f"carecouch-bridge-{run}\ufff0"))["rows"]:
        users.delete(row["id"], row["value"]["rev"])
    registry = admin.db(REGISTRY_DB)
    for row in registry.all_docs(include_docs=True)["rows"]:
        doc = row.get("doc") or {}
        owner = str(doc.get("enrolled_by") or doc.get("user") or "")
        if doc.get("type") in ("device", "user_revocation") and owner.endswith(f"-{run}"):
            registry.delete(doc["_id"], doc["_rev"])
    for caseload_id in caseloads:
        admin.db(caseload_db(caseload_id)).destroy(missing_ok=True)
        record = registry.get_or_none(registry_doc_id(caseload_id))
        if record is not None:
            registry.delete(record["_id"], record["_rev"])


@pytest.fixture(scope="session")
def bridge_env(world: World, tmp_path_factory: pytest.TempPathFactory) -> BridgeEnv:
    keys = tmp_path_factory.mktemp("bridge-keys")
    signing = Ed25519PrivateKey.generate()
    (keys / "signing.pem").write_bytes(private_key_pem(signing))
    idp_key = Ed25519PrivateKey.generate()
    (keys / "idp.pem").write_bytes(public_key_pem(idp_key.public_key()))
    return BridgeEnv(keys, Idp(idp_key), signing, f"carecouch-bridge-{world.run}",
                     secrets.token_urlsafe(18))


def bridge_config(server: Any, env: BridgeEnv, policy_file: Path,
                  **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "COUCHDB_URL": server.url, "COUCHDB_USER": server.user,
        "COUCHDB_PASSWORD": server.password,
        "CARECOUCH_BRIDGE_POLICY": str(policy_file),
        "CARECOUCH_BRIDGE_SIGNING_KEY_FILE": str(env.keys / "signing.pem"),
        "CARECOUCH_BRIDGE_IDP_KEYS_FILE": str(env.keys / "idp.pem"),
        "CARECOUCH_BRIDGE_IDP_ISSUER": ISSUER, "CARECOUCH_BRIDGE_IDP_AUDIENCE": AUDIENCE,
        "CARECOUCH_BRIDGE_COUCHDB_USER": env.couch_user,
        "CARECOUCH_BRIDGE_COUCHDB_PASSWORD": env.couch_password,
        "CARECOUCH_BRIDGE_RATE_LIMIT": "10000/60",
        # Every test sends from 127.0.0.1, and many fail on purpose: tests of the failure
        # budget set their own (tests/bridge/test_failures.py).
        "CARECOUCH_BRIDGE_FAILURE_LIMIT": "100000/60",
        "CARECOUCH_BRIDGE_REAP_INTERVAL": "0",
    }
    config.update(overrides)
    return config


class RunningBridge:
    def __init__(self, app: Flask) -> None:
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self, app: Flask) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()
        app.extensions["carecouch"].close()


def start_bridge(server: Any, env: BridgeEnv, directory: Path, policy: str,
                 overrides: dict[str, Any]) -> tuple[BridgeServer, RunningBridge]:
    """A bridge on a free port with ``policy`` and settings ``overrides``; stop it with
    ``running.stop(started.app)``."""
    directory.mkdir(parents=True, exist_ok=True)
    policy_file = directory / f"policy-{uuid.uuid4().hex[:6]}.yaml"
    policy_file.write_text(policy)
    app = create_app(bridge_config(server, env, policy_file, **overrides))
    running = RunningBridge(app)
    url = f"http://127.0.0.1:{running.server.server_port}"
    return BridgeServer(url, app, policy_file, env.idp), running


@pytest.fixture(scope="session")
def bridge(server: Any, world: World, bridge_env: BridgeEnv,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[BridgeServer]:
    """The bridge with the standard test policy, for the whole session."""
    started, running = start_bridge(server, bridge_env, tmp_path_factory.mktemp("bridge"),
                              world.policy(), {})
    yield started
    running.stop(started.app)


@pytest.fixture
def make_bridge(server: Any, world: World, bridge_env: BridgeEnv,
                tmp_path: Path) -> Iterator[Callable[..., BridgeServer]]:
    """``make_bridge(policy=None, **settings)``: another bridge, stopped after the test."""
    running: list[tuple[BridgeServer, RunningBridge]] = []

    def make(policy: str | None = None, **overrides: Any) -> BridgeServer:
        pair = start_bridge(server, bridge_env, tmp_path / f"bridge{len(running)}",
                      policy if policy is not None else world.policy(), overrides)
        running.append(pair)
        return pair[0]

    yield make
    for started, handle in running:
        handle.stop(started.app)
