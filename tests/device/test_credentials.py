"""401: the replicator renews its credentials once and carries on; a second 401 stops it with a
clear status (here the renewal is a fresh real CouchDB user; test_bridge_session.py renews
through the bridge)."""

from __future__ import annotations

from collections.abc import Callable

from carecouch.couch import CouchClient, Database
from mobile_stub.credentials import Credentials
from mobile_stub.device import Device
from mobile_stub.replication import SyncState
from tests.helpers.devices import UserCredentials
from tests.helpers.fixtures import User
from tests.helpers.server import Server

from .support import delete_user


def test_a_401_renews_the_credentials_once_and_the_sync_goes_on(
        server: Server, admin: CouchClient, member_db: Database, member: User,
        make_device: Callable[..., Device]) -> None:
    member_db.put({"_id": "observation:1", "type": "observation"})
    device = make_device(member_db, member)
    assert device.sync(member_db.name).ok
    device.new_record(member_db.name, "note", {"subject": "patient:1", "text": "after revoke"})
    member_db.put({"_id": "observation:2", "type": "observation"})
    delete_user(admin, server.url, member.name, member.password)

    report = device.sync(member_db.name)
    assert report.ok, report.message
    assert report.renewed_credentials
    credentials = device.credentials
    assert isinstance(credentials, UserCredentials) and credentials.renewals == 1
    assert credentials.user.name != member.name
    assert report.pull.docs_written == 1 and report.push.docs_written == 1


def test_a_second_401_stops_the_sync_with_a_clear_status(
        server: Server, admin: CouchClient, member_db: Database, member: User,
        make_device: Callable[..., Device]) -> None:
    device = make_device(member_db, member)
    assert device.sync(member_db.name).ok
    delete_user(admin, server.url, member.name, member.password)
    credentials = device.credentials
    assert isinstance(credentials, UserCredentials)
    credentials.renew_with = Credentials(member.name, "not-the-password")

    report = device.sync(member_db.name)
    assert report.state is SyncState.UNAUTHORIZED
    assert "log in again" in report.message
    assert credentials.renewals == 1  # once, not in a loop

    credentials.can_renew = False  # no renewal at all: stopped at the first 401
    report = device.sync(member_db.name)
    assert report.state is SyncState.UNAUTHORIZED and credentials.renewals == 2
