"""End to end with two field devices (the project's replicator, mobile_stub): they edit a care
plan offline, sync, and the server holds a conflict; a clinical admin resolves it with the
CLI; the devices sync the resolution; compaction cannot lose what was discarded; undo."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from carecouch.ids import member_role
from mobile_stub.credentials import StaticCredentials
from mobile_stub.crypto import KdfParams
from mobile_stub.device import Device
from mobile_stub.replication import ReplicatorOptions, RetryPolicy
from mobile_stub.store import DeviceStore
from tests.conflicts.support import Cli, bodies, body, compact, live, resolutions
from tests.helpers.fixtures import User
from tests.helpers.provisioned import Caseload
from tests.helpers.records import now

FAST = ReplicatorOptions(retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05))


@dataclass
class Tablet:
    device: Device
    user: str  # the nurse signed in on it


@pytest.fixture
def make_tablet(caseload: Caseload, make_user: Callable[..., User],
                tmp_path: Path) -> Iterator[Callable[[str], Tablet]]:
    """``make_tablet("ana")``: a nurse's device with its own encrypted store, signed in to the
    caseload as the session ``ana~<device id>``, as the bridge names it."""
    stores: list[DeviceStore] = []

    def make(nurse: str) -> Tablet:
        store = DeviceStore.create(tmp_path / f"{nurse}.sqlite", "ward seven blue kettle",
                                   kdf=KdfParams.new(memory_kib=8 * 1024, iterations=1))
        stores.append(store)
        store.add_database(caseload.db.name, caseload.db.client.url)
        user = f"{nurse}-{caseload.id}"
        account = make_user(["clinical:nurse", member_role(caseload.id)],
                            name=f"{user}~{store.device_id}")
        return Tablet(Device(store, StaticCredentials(account.name, account.password),
                             author=user, options=FAST), user)

    yield make
    for store in stores:
        store.close()


def change(tablet: Tablet, db: str, doc_id: str, **fields: Any) -> str:
    """What the care-plan screen does: edit fields of what the tablet holds, stamp each."""
    doc = tablet.device.store.database(db).get(doc_id)
    stamp = {"by": tablet.user, "at": now()}
    stamps = {**doc.get("changed", {}), **{f: stamp for f in fields}}
    return tablet.device.edit(db, {**doc, **fields, "changed": stamps})


def synced(tablet: Tablet, db: str) -> None:
    report = tablet.device.sync(db)
    assert report.ok and not report.rejected, (report, tablet.device.rejections(db))


def test_two_tablets_conflict_and_an_admin_resolves_it(
        caseload: Caseload, make_tablet: Callable[[str], Tablet], cli: Cli) -> None:
    name = caseload.db.name
    ana, ben = make_tablet("ana"), make_tablet("ben")
    for each in (ana, ben):  # first sync: the tablets learn the server's clock
        synced(each, name)
    stamp = {"by": ana.user, "at": now()}
    doc_id = ana.device.new_record(name, "care_plan", {
        "subject": "patient-001", "title": "Venous leg ulcer", "goals": ["heal within 12 weeks"],
        "changed": {"title": stamp, "goals": stamp}})["_id"]
    synced(ana, name)
    synced(ben, name)

    for each in (ana, ben):  # both go out of coverage
        each.device.store.set_offline(True)
    change(ana, name, doc_id, title="Venous ulcer, left leg")
    change(ben, name, doc_id, goals=["heal within 8 weeks"], note="compression tolerated")
    for each in (ana, ben):
        each.device.store.set_offline(False)
        synced(each, name)
    before = live(caseload.db, doc_id)
    assert len(before) == 2  # the server holds both edits: a conflict

    listed = json.loads(cli("conflicts", "list", "--caseload", caseload.id, "--json").stdout)
    assert [(c["doc"], c["action"]) for c in listed["conflicts"]] == [(doc_id, "auto: merge")]
    done = cli("conflicts", "auto", "--caseload", caseload.id, "--yes", "--json")
    assert done.exit_code == 0, done.stderr
    [merged] = live(caseload.db, doc_id).values()
    assert merged["title"] == "Venous ulcer, left leg" and merged["note"] == (
        "compression tolerated") and merged["goals"] == ["heal within 8 weeks"]

    for each in (ana, ben):  # the resolution reaches the field, and the conflict goes
        synced(each, name)
        local = each.device.store.database(name)
        assert local.conflicted_ids() == []
        assert local.get(doc_id)["_rev"] == merged["_rev"]

    compact(caseload.db, doc_id, next(iter(before)))
    [record] = resolutions(caseload.db)
    assert {d["_rev"]: body(d) for d in record["discarded"]} == {
        rev: body(doc) for rev, doc in before.items()}
    undone = cli("conflicts", "undo", record["_id"], "--caseload", caseload.id, "--reason",
                 "the MDT wants to see both", "--yes")
    assert undone.exit_code == 0, undone.stderr
    assert bodies(live(caseload.db, doc_id)) == bodies(before)
    synced(ana, name)  # and the tablets see the conflict again
    assert ana.device.store.database(name).conflicted_ids() == [doc_id]
