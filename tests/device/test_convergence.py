"""Two devices and the server converge after concurrent offline edits; conflicts are visible."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

from carecouch.couch import Database
from mobile_stub.device import Device
from mobile_stub.replication import SyncState

from .support import device_leaves, server_leaves


def test_two_devices_converge_and_see_the_same_conflict(
        member_db: Database, make_device: Callable[..., Device]) -> None:
    member_db.put({"_id": "careplan:1", "type": "careplan", "subject": "patient:7",
                  "goals": ["mobility"]})
    alice, bob = make_device(member_db), make_device(member_db)
    assert alice.sync(member_db.name).ok and bob.sync(member_db.name).ok

    for device in (alice, bob):
        device.store.set_offline(True)
    a_doc = alice.store.database(member_db.name).get("careplan:1")
    b_doc = bob.store.database(member_db.name).get("careplan:1")
    alice.edit(member_db.name, {**a_doc, "goals": ["mobility", "diet"]})
    bob.edit(member_db.name, {**b_doc, "goals": ["sleep"]})
    bob.new_record(member_db.name, "observation", {"subject": "patient:7", "pulse": 71})
    offline = alice.sync(member_db.name)
    assert offline.state is SyncState.OFFLINE

    for device in (alice, bob):
        device.store.set_offline(False)
    assert alice.sync(member_db.name).ok
    assert bob.sync(member_db.name).ok
    assert alice.sync(member_db.name).ok

    on_server = member_db.get("careplan:1", conflicts=True)
    assert len(on_server["_conflicts"]) == 1
    for device in (alice, bob):
        local = device.store.database(member_db.name)
        mine = local.get("careplan:1", conflicts=True)
        assert (mine["_rev"], mine["_conflicts"]) == (on_server["_rev"], on_server["_conflicts"])
        assert local.conflicted_ids() == ["careplan:1"]
        assert device_leaves(local) == server_leaves(member_db)


def server_offset_ms(db: Database) -> float:
    date = db.client.request("GET", "").headers["date"]
    return (parsedate_to_datetime(date).timestamp() + 0.5 - time.time()) * 1000


def test_a_local_edit_carries_device_time_and_clock_offset(
        member_db: Database, make_device: Callable[..., Device]) -> None:
    device = make_device(member_db)
    assert device.sync(member_db.name).ok  # an answer from the server: an offset estimate
    doc = device.new_record(member_db.name, "observation", {"subject": "patient:1", "pulse": 60})
    stored = device.store.database(member_db.name).get(doc["_id"])
    assert stored["at"].endswith("Z") and stored["device"] == device.store.device_id
    # An independent reading of the server's clock agrees, within Date's 1 s resolution.
    assert isinstance(stored["clock_offset_ms"], int)
    assert abs(stored["clock_offset_ms"] - server_offset_ms(member_db)) <= 1500
    assert stored["author"] == device.credentials.current().username
    assert device.sync(member_db.name).ok
    assert member_db.get(doc["_id"])["clock_offset_ms"] == stored["clock_offset_ms"]


def test_deletions_replicate_both_ways(member_db: Database,
                                       make_device: Callable[..., Device]) -> None:
    first = member_db.put({"_id": "task:1", "type": "task"})
    member_db.put({"_id": "task:2", "type": "task"})
    device = make_device(member_db)
    assert device.sync(member_db.name).ok
    member_db.delete("task:1", first["rev"])
    local = device.store.database(member_db.name)
    device.delete(member_db.name, "task:2", local.get("task:2")["_rev"])
    assert device.sync(member_db.name).ok
    assert local.doc_ids() == []
    assert member_db.get_or_none("task:2") is None
    assert device_leaves(local) == server_leaves(member_db)


def test_attachments_travel_both_ways(member_db: Database,
                                      make_device: Callable[..., Device]) -> None:
    photo = base64.b64encode(b"\x89PNG wound photo \x00\x01\x02").decode()
    member_db.put({"_id": "wound:1", "type": "wound", "_attachments": {
        "photo.png": {"content_type": "image/png", "data": photo}}})
    device = make_device(member_db)
    assert device.sync(member_db.name).ok
    local = device.store.database(member_db.name)
    pulled = local.get("wound:1")
    assert pulled["_attachments"]["photo.png"]["data"] == photo
    device.edit(member_db.name, {**pulled, "healing": "good"})
    assert device.sync(member_db.name).ok
    on_server = member_db.get("wound:1", attachments=True)
    assert on_server["healing"] == "good" and on_server["_rev"].startswith("2-")
    assert on_server["_attachments"]["photo.png"]["data"] == photo
    assert device_leaves(local) == server_leaves(member_db)
