"""Fixtures for the reference device: caseload databases, member users, devices.

Every device test talks to the real server over HTTP (the session's embedded server, or Apache
CouchDB 3.5 with ``COUCHDB_URL``); databases and users are unique and removed afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from carecouch.couch import Database
from mobile_stub.credentials import Credentials
from mobile_stub.crypto import KdfParams
from mobile_stub.device import Device
from mobile_stub.replication import (
    PullOptions,
    PushOptions,
    ReplicationFilter,
    ReplicatorOptions,
    RetryPolicy,
)
from mobile_stub.store import DeviceStore
from tests.conftest import Server
from tests.helpers.fixtures import User

ROLE = "caseload:devtest"
PASSPHRASE = "correct horse battery staple"
# The real KDF costs 64 MiB and ~0.2 s on purpose; tests open many stores.
FAST_KDF: dict[str, Any] = {"memory_kib": 8 * 1024, "iterations": 1}
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


def fast_options(**pull: Any) -> ReplicatorOptions:
    return ReplicatorOptions(pull=PullOptions(**pull), push=PushOptions(), retry=FAST_RETRY)


class UserCredentials:
    """A provider over a test user; ``renew`` makes a fresh real CouchDB user (as the bridge
    will), or returns ``renew_with`` when the test wants a particular answer."""

    def __init__(self, user: User, make_user: Callable[..., User]) -> None:
        self.user = user
        self._make_user = make_user
        self.renewals = 0
        self.renew_with: Credentials | None = None
        self.can_renew = True

    def current(self) -> Credentials:
        return Credentials(self.user.name, self.user.password)

    def renew(self) -> Credentials | None:
        self.renewals += 1
        if not self.can_renew:
            return None
        if self.renew_with is not None:
            return self.renew_with
        self.user = self._make_user(roles=[ROLE])
        return self.current()


@pytest.fixture
def caseload(make_db: Callable[..., Database]) -> Database:
    """A caseload-like database: members are users with the role ``caseload:devtest``."""
    return make_db(security={"admins": {"names": [], "roles": []},
                             "members": {"names": [], "roles": [ROLE]}})


@pytest.fixture
def member(make_user: Callable[..., User]) -> User:
    return make_user(roles=[ROLE])


@pytest.fixture
def make_device(tmp_path: Path, server: Server, make_user: Callable[..., User]
                ) -> Iterator[Callable[..., Device]]:
    """``make_device(db, user=None, *, url=None, filter=None, options=None)``: a device with
    its own encrypted store holding ``db`` (bound to ``url``, default the test server)."""
    stores: list[DeviceStore] = []

    def make(db: Database, user: User | None = None, *, url: str | None = None,
             filter: ReplicationFilter | None = None,
             options: ReplicatorOptions | None = None) -> Device:
        path = tmp_path / f"device{len(stores)}" / "store.sqlite"
        store = DeviceStore.create(path, PASSPHRASE, kdf=KdfParams.new(**FAST_KDF))
        stores.append(store)
        store.add_database(db.name, url or server.url,
                           filter.canonical() if filter else None)
        credentials = UserCredentials(user or make_user(roles=[ROLE]), make_user)
        return Device(store, credentials, options=options or fast_options())

    yield make
    for store in stores:
        try:
            store.close()
        except Exception:  # noqa: BLE001 - wiped or closed by the test
            pass
