"""Fixtures for the reference device: caseload databases, member users, devices.

Every device test talks to the real server over HTTP (the session's embedded server, or Apache
CouchDB 3.5 with ``COUCHDB_URL``); databases and users are unique and removed afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from carecouch.couch import Database
from mobile_stub import enrolment
from mobile_stub.cli import main
from mobile_stub.crypto import KdfParams
from mobile_stub.device import Device
from mobile_stub.replication import (
    ReplicationFilter,
    ReplicatorOptions,
)
from mobile_stub.session import BridgeSession
from mobile_stub.store import DeviceStore
from tests.helpers.bridges import BridgeServer, World
from tests.helpers.devices import (
    FAST_KDF,
    PASSPHRASE,
    ROLE,
    Clinician,
    Invoke,
    UserCredentials,
    fast_options,
)
from tests.helpers.fixtures import User
from tests.helpers.server import Server


@pytest.fixture
def member_db(make_db: Callable[..., Database]) -> Database:
    """A caseload-like database whose members are users with the role ``caseload:devtest``
    (``member``); a provisioned caseload, with the shipped rules, is ``caseload``."""
    return make_db(security={"admins": {"names": [], "roles": []},
                             "members": {"names": [], "roles": [ROLE]}})


@pytest.fixture
def member(make_user: Callable[..., User]) -> User:
    return make_user(roles=[ROLE])


@pytest.fixture
def new_store(tmp_path: Path) -> Iterator[Callable[[], DeviceStore]]:
    """``new_store()``: a fresh encrypted device store of its own, closed after the test."""
    stores: list[DeviceStore] = []

    def make() -> DeviceStore:
        path = tmp_path / f"device{len(stores)}" / "store.sqlite"
        stores.append(DeviceStore.create(path, PASSPHRASE, kdf=KdfParams.new(**FAST_KDF)))
        return stores[-1]

    yield make
    for store in stores:
        try:
            store.close()
        except Exception:  # noqa: BLE001 - wiped or closed by the test
            pass


@pytest.fixture
def make_device(new_store: Callable[[], DeviceStore], server: Server,
                make_user: Callable[..., User]) -> Callable[..., Device]:
    """``make_device(db, user=None, *, url=None, filter=None, options=None)``: a device with
    its own encrypted store holding ``db`` (bound to ``url``, default the test server)."""

    def make(db: Database, user: User | None = None, *, url: str | None = None,
             filter: ReplicationFilter | None = None,
             options: ReplicatorOptions | None = None) -> Device:
        store = new_store()
        store.add_database(db.name, url or server.url,
                           filter.canonical() if filter else None)
        credentials = UserCredentials(user or make_user(roles=[ROLE]), make_user)
        device = Device(store, credentials, options=options or fast_options())
        device.learn_rules(db.name)  # as `init` does online: which rules the db has
        return device

    return make


# -- devices enrolled with a real bridge (tests/helpers/bridges.py runs it) -----------------

@pytest.fixture
def clinician(bridge: BridgeServer, world: World) -> Callable[..., Clinician]:
    """``clinician("nurse")``: a new ward nurse (caseloads a and b); ``"hca"``: the school
    healthcare assistant (caseload c, observations only); ``bridge=`` another bridge."""

    def make(kind: str = "nurse", *, on: BridgeServer | None = None) -> Clinician:
        if kind == "hca":
            return Clinician(world.user("hca"), [], on or bridge)
        return Clinician(world.user(f"{kind}{uuid.uuid4().hex[:6]}"), [world.group("nurses")],
                         on or bridge)
    return make


@pytest.fixture
def enrolled(new_store: Callable[[], DeviceStore], clinician: Callable[..., Clinician]
             ) -> Callable[..., BridgeSession]:
    """``enrolled(who=None)``: a new device store, enrolled with the bridge and logged in as
    ``who`` (default: a new ward nurse)."""

    def make(who: Clinician | None = None) -> BridgeSession:
        who = who or clinician()
        store = new_store()
        enrolment.enrol(store, who.bridge.url, who.token())
        session = BridgeSession(store)
        session.login()
        return session

    return make


@pytest.fixture
def device_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """``device_cli("sync", "--json", stdin=None)``: carecouch-device on a store of its own
    (the store's passphrase in the environment, as a field deployment would script it)."""
    monkeypatch.setenv("CARECOUCH_DEVICE_STORE", str(tmp_path / "cli" / "store.sqlite"))
    monkeypatch.setenv("CARECOUCH_DEVICE_PASSPHRASE", PASSPHRASE)
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(main, list(args), input=stdin, catch_exceptions=False)
    return invoke


@pytest.fixture
def run(tmp_path: Path, member: User, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """``run("sync", "--json", stdin=None)``: carecouch-device on a development store (no
    bridge) that syncs as ``member``."""
    monkeypatch.setenv("CARECOUCH_DEVICE_STORE", str(tmp_path / "device" / "store.sqlite"))
    monkeypatch.setenv("CARECOUCH_DEVICE_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("CARECOUCH_DEVICE_USER", member.name)
    monkeypatch.setenv("CARECOUCH_DEVICE_PASSWORD", member.password)
    runner = CliRunner()

    def invoke(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(main, list(args), input=stdin, catch_exceptions=False)
    return invoke
