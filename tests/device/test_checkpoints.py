"""Checkpoints on both sides, in CouchDB's format; a broken pull resumes from its checkpoint.
What another member writes there cannot move it: tests/device/test_checkpoint_tampering.py."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from carecouch.couch import Database
from mobile_stub.device import Device
from mobile_stub.replication import SyncState
from tests.helpers.chaos_proxy import ChaosProxy
from tests.helpers.devices import fast_options
from tests.helpers.server import Server

from .support import device_leaves, server_leaves

HISTORY_FIELDS = {"session_id", "start_time", "end_time", "start_last_seq", "end_last_seq",
                  "recorded_seq", "missing_checked", "missing_found", "docs_read",
                  "docs_written", "doc_write_failures"}


def fill(db: Database, count: int, prefix: str = "observation") -> None:
    docs = [{"_id": f"{prefix}:{i:05d}", "type": prefix, "subject": f"patient:{i % 9}",
             "value": i, "note": secrets.token_hex(128)} for i in range(count)]
    for start in range(0, count, 500):
        db.bulk_docs(docs[start:start + 500])


def local_checkpoints(device: Device, db: str) -> dict[str, dict[str, Any]]:
    rows = device.store.conn.execute("SELECT id, body FROM local_docs").fetchall()
    local = device.store.database(db)
    return {row[0]: local.get_local(row[0]) or {} for row in rows}


def test_checkpoints_are_written_on_both_sides_in_couchdb_format(
        member_db: Database, make_device: Callable[..., Device]) -> None:
    fill(member_db, 30)
    device = make_device(member_db)
    device.new_record(member_db.name, "note", {"subject": "patient:1", "text": "x"})
    assert device.sync(member_db.name).ok
    checkpoints = local_checkpoints(device, member_db.name)
    assert len(checkpoints) == 2  # one pull, one push replication
    for rep_id, local in checkpoints.items():
        remote = member_db.get(f"_local/{rep_id}")
        assert remote["session_id"] == local["session_id"]
        assert remote["source_last_seq"] == local["source_last_seq"]
        assert remote["replication_id_version"] == local["replication_id_version"]
        (entry,) = local["history"]
        assert set(entry) == HISTORY_FIELDS
        assert entry["recorded_seq"] == local["source_last_seq"]
    pull_entry = next(c["history"][0] for c in checkpoints.values()
                      if c["history"][0]["docs_written"] == 30)
    assert pull_entry["missing_found"] == 30
    # The pull checkpoint holds the server's own sequence, untouched (opaque: str or int).
    info_seq = member_db.info()["update_seq"]
    assert type(pull_entry["recorded_seq"]) is type(info_seq)

    # A second sync with nothing new reads nothing and keeps the sessions' history.
    again = device.sync(member_db.name)
    assert again.ok and again.pull.docs_read == 0 and again.push.docs_read == 0


def test_an_interrupted_pull_resumes_from_its_checkpoint(
        server: Server, member_db: Database, make_device: Callable[..., Device]) -> None:
    fill(member_db, 600)
    target = urlsplit(server.url)
    assert target.hostname and target.port
    with ChaosProxy(target.hostname, target.port) as proxy:
        device = make_device(member_db, url=proxy.url,
                             options=fast_options(batch_size=50, checkpoint_interval=0))
        # The network dies about half-way through the pull (~135 kB in all, gzipped).
        proxy.outage_after(70_000)
        broken = device.sync(member_db.name)
        assert broken.state is SyncState.UNREACHABLE
        stored = broken.pull.docs_written
        assert 0 < stored < 600

        proxy.heal()
        resumed = device.sync(member_db.name)
        assert resumed.ok
        # Only what came after the checkpoint (at most one batch behind what was stored) was
        # listed again, and nothing was stored twice.
        assert resumed.pull.missing_checked <= 600 - stored + 50
        assert stored + resumed.pull.docs_written == 600
    assert device_leaves(device.store.database(member_db.name)) == server_leaves(member_db)
