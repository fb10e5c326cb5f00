"""A hostile member of the caseload rewrites or deletes a device's replication checkpoints.

Any member may read, list and rewrite every ``_local`` document of a database it belongs to,
on CouchDB 3.5 as on the embedded server, so another device's checkpoints are in reach of a
stolen tablet. The device must never skip a change because of what someone else wrote there:
it resumes only from its own copy, and a server copy that is not the one it wrote makes it
start again from the beginning, which it reports (docs/device.md, "Checkpoints").
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from carecouch.couch import Database
from mobile_stub.cli import main
from mobile_stub.device import Device
from mobile_stub.replication import checkpoint_restarts
from mobile_stub.replication.checkpoints import (
    SERVER_COPY,
    SERVER_PENDING,
    CheckpointTrust,
    judge,
)
from mobile_stub.replication.ids import Direction, replication_id
from tests.helpers.devices import PASSPHRASE, ROLE
from tests.helpers.fixtures import User
from tests.helpers.server import Server

from .support import device_leaves, server_leaves


def observations(count: int, tag: str) -> list[dict[str, Any]]:
    return [{"_id": f"observation:{tag}{i:03d}", "type": "observation",
             "subject": f"patient-{i % 7}", "news2": 7, "note": secrets.token_hex(8)}
            for i in range(count)]


def checkpoint_id(device_id: str, db: Database, server_url: str,
                  direction: Direction) -> str:
    """A device's checkpoint id as another member works it out: the replication id hashes
    what anyone can know (the device id is on every record the device writes)."""
    return replication_id(device_id=device_id, local_db=db.name, server_url=server_url,
                          remote_db=db.name, direction=direction, filter=None)


def checkpoint_of(device: Device, db: Database, direction: Direction) -> str:
    return checkpoint_id(device.store.device_id, db, db.client.url, direction)


def test_raising_the_pull_checkpoint_hides_nothing(
        member_db: Database, make_device: Callable[..., Device],
        make_user: Callable[..., User]) -> None:
    victim = make_device(member_db)
    member_db.bulk_docs(observations(10, "old"))
    assert victim.sync(member_db.name).ok
    attacker = make_user(roles=[ROLE]).client.db(member_db.name)

    # 30 NEWS2-7 observations arrive while the victim is away; the attacker then claims, in
    # the victim's pull checkpoint (same session), that the victim already has them.
    member_db.bulk_docs(observations(30, "new"))
    rep_id = checkpoint_of(victim, member_db, "pull")
    forged = attacker.get(f"_local/{rep_id}")
    latest = member_db.info()["update_seq"]
    forged["source_last_seq"] = latest
    forged["history"][0]["recorded_seq"] = latest
    attacker.put(forged)

    report = victim.sync(member_db.name)
    assert report.ok
    local = victim.store.database(member_db.name)
    assert len([i for i in local.doc_ids() if i.startswith("observation:new")]) == 30
    assert device_leaves(local) == server_leaves(member_db)
    assert report.checkpoints["pull"] == CheckpointTrust.SERVER_ALTERED
    (event,) = checkpoint_restarts(victim.store, member_db.name)
    assert event["direction"] == "pull" and event["trust"] == "server_altered"

    # Once the device wrote its own checkpoint again, the next sync resumes from it.
    again = victim.sync(member_db.name)
    assert again.checkpoints["pull"] == CheckpointTrust.AGREED
    assert again.pull.missing_checked == 0


def test_deleting_the_checkpoints_costs_a_full_pull_and_loses_nothing(
        member_db: Database, make_device: Callable[..., Device],
        make_user: Callable[..., User]) -> None:
    victim = make_device(member_db)
    member_db.bulk_docs(observations(25, "a"))
    victim.new_record(member_db.name, "note", {"subject": "patient-1", "text": "seen"})
    assert victim.sync(member_db.name).ok
    attacker = make_user(roles=[ROLE]).client.db(member_db.name)
    for direction in ("pull", "push"):
        doc = attacker.get(f"_local/{checkpoint_of(victim, member_db, direction)}")
        attacker.delete(doc["_id"], doc["_rev"])
    member_db.bulk_docs(observations(5, "b"))

    report = victim.sync(member_db.name)
    assert report.ok
    assert report.checkpoints == {"pull": "server_missing", "push": "server_missing"}
    assert report.pull.missing_checked == 31 and report.pull.docs_written == 5
    assert report.push.docs_written == 0  # the note was already there: nothing sent twice
    assert device_leaves(victim.store.database(member_db.name)) == server_leaves(member_db)


def test_a_forged_push_history_cannot_make_the_device_skip_its_changes(
        member_db: Database, make_device: Callable[..., Device],
        make_user: Callable[..., User]) -> None:
    victim = make_device(member_db)
    for round_ in range(2):  # two sessions in the device's push history
        victim.new_record(member_db.name, "note", {"subject": "patient-1", "text": f"{round_}"})
        assert victim.sync(member_db.name).ok
    mine = victim.store.database(member_db.name).get_local(
        checkpoint_of(victim, member_db, "push"))
    assert mine is not None and len(mine["history"]) == 2
    older = mine["history"][1]["session_id"]

    # CouchDB's rule (compare_replication_logs) would resume from the server copy's newest
    # entry when its session is an older one of the device's: a huge local sequence.
    attacker = make_user(roles=[ROLE]).client.db(member_db.name)
    forged = attacker.get(f"_local/{checkpoint_of(victim, member_db, 'push')}")
    forged.update(session_id=older, source_last_seq=10**9,
                  history=[{"session_id": older, "recorded_seq": 10**9}])
    attacker.put(forged)

    written = [victim.new_record(member_db.name, "note", {"subject": "patient-2",
                                                         "text": f"visit {i}"})
               for i in range(5)]
    report = victim.sync(member_db.name)
    assert report.ok and report.push.docs_written == 5
    assert report.checkpoints["push"] == CheckpointTrust.SERVER_ALTERED
    for doc in written:
        assert member_db.get(doc["_id"])["_rev"] == doc["_rev"]


def test_sync_and_status_say_when_a_checkpoint_was_not_the_devices(
        tmp_path: Path, server: Server, member_db: Database, member: User,
        make_user: Callable[..., User], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARECOUCH_DEVICE_STORE", str(tmp_path / "cli" / "store.sqlite"))
    monkeypatch.setenv("CARECOUCH_DEVICE_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("CARECOUCH_DEVICE_USER", member.name)
    monkeypatch.setenv("CARECOUCH_DEVICE_PASSWORD", member.password)

    def run(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    assert run("init", "--server", server.url, "--db", member_db.name).exit_code == 0
    assert run("sync").exit_code == 0
    device_id = json.loads(run("status", "--json").stdout)["device_id"]
    attacker = make_user(roles=[ROLE]).client.db(member_db.name)
    forged = attacker.get(f"_local/{checkpoint_id(device_id, member_db, server.url, 'pull')}")
    forged["session_id"] = "someone-else"
    attacker.put(forged)

    synced = run("sync")
    assert synced.exit_code == 0
    assert "pull checkpoint was missing or not this device's" in synced.stdout
    status = run("status")
    assert "checkpoint: pull at" in status.stdout
    assert "not the one this device wrote" in status.stdout
    (db,) = json.loads(run("status", "--json").stdout)["databases"]
    assert [e["trust"] for e in db["checkpoint_restarts"]] == ["server_altered"]


def test_judging_a_checkpoint() -> None:
    mine = {"session_id": "s2", "source_last_seq": "9-x", SERVER_COPY: ["s2", "9-x"]}
    assert judge(None, mine) is CheckpointTrust.NONE
    assert judge(mine, None) is CheckpointTrust.SERVER_MISSING
    assert judge(mine, {"session_id": "s2", "source_last_seq": "9-x"}) is CheckpointTrust.AGREED
    for altered in ({"session_id": "s2", "source_last_seq": "99-y"},
                    {"session_id": "s1", "source_last_seq": "9-x"},
                    {"session_id": "s2", "source_last_seq": 9}):
        assert judge(mine, altered) is CheckpointTrust.SERVER_ALTERED, altered
    # A server write that failed, or landed with its answer lost: either is the device's.
    in_flight = {**mine, "source_last_seq": "12-z", SERVER_PENDING: ["s2", "12-z"]}
    for held in ("9-x", "12-z"):
        assert judge(in_flight, {"session_id": "s2", "source_last_seq": held}) is \
            CheckpointTrust.AGREED
    # Written before SERVER_COPY existed: the server held the same document.
    legacy = {"session_id": "s1", "source_last_seq": 4}
    assert judge(legacy, dict(legacy)) is CheckpointTrust.AGREED
    assert json.dumps(judge(mine, None)) == '"server_missing"'


def test_an_attacker_rewriting_every_local_document_it_lists_hides_nothing(
        member_db: Database, make_device: Callable[..., Device],
        make_user: Callable[..., User]) -> None:
    # No working out of ids: list `_local_docs` (CouchDB 3.5 answers it to members) and
    # raise every checkpoint found to the database's latest sequence.
    victim = make_device(member_db)
    assert victim.sync(member_db.name).ok
    attacker = make_user(roles=[ROLE]).client.db(member_db.name)
    member_db.bulk_docs(observations(12, "late"))
    listed = attacker.client.json("GET", f"{attacker.path}/_local_docs")["rows"]
    assert len(listed) == 2  # the victim's pull and push checkpoints
    for row in listed:
        doc = attacker.get(row["id"])
        doc["source_last_seq"] = member_db.info()["update_seq"]
        attacker.put(doc)
    report = victim.sync(member_db.name)
    assert report.ok and report.pull.docs_written == 12
    assert device_leaves(victim.store.database(member_db.name)) == server_leaves(member_db)
