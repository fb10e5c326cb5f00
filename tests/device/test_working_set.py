"""The device keeps its working set and nothing more (mobile_stub/working_set.py): each way
the working set shrinks removes records from the store, locally and securely; a record whose
local changes the server has not confirmed stays; attachment data goes after its retention and
comes back online.

Each test runs its own bridge over caseloads of its own, so what the device holds is exactly
what the test put there; the policy is changed as IT would change it (the file, reloaded).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from carecouch.couch import CouchClient, Database
from carecouch.fleet import FleetStore
from carecouch.ids import caseload_db
from carecouch.provisioning import Provisioner
from mobile_stub import enrolment, reports, working_set
from mobile_stub.errors import DeviceOffline
from mobile_stub.replication import SyncState
from mobile_stub.session import BridgeSession
from mobile_stub.store import DeviceStore
from tests.helpers.bridges import BridgeServer, World
from tests.helpers.devices import Invoke, fast_options
from tests.helpers.records import envelope, iso, put

POLICY = """\
version: 1
defaults:
  credential_lifetime: 1h
  offline_grace: 5d
admins:
  groups: [it-{run}]
rules:
  - name: field nurses
    users: [{user}]
    clinical_roles: [nurse]
    caseloads: [{caseloads}]
    filter:
      time_window: 7d
{extra}"""


@dataclass
class Field:
    """A nurse's enrolled device over caseloads of its own, behind a bridge of its own."""

    bridge: BridgeServer
    world: World
    user: str
    caseloads: list[str]
    admin: CouchClient
    new_store: Callable[[], DeviceStore]
    spare: str  # a second caseload, not granted until a test adds it

    def db(self, index: int = 0) -> Database:
        return self.admin.db(caseload_db(self.caseloads[index]))

    def name(self, index: int = 0) -> str:
        return caseload_db(self.caseloads[index])

    def policy(self, *, caseloads: list[str] | None = None, extra: str = "") -> None:
        """Write the policy, as IT would; the bridge reloads it."""
        self.bridge.write_policy(policy_text(self.world, self.user, caseloads or
                                             self.caseloads, extra))

    def session(self, *, now: Callable[[], float] = time.time) -> BridgeSession:
        store = self.new_store()
        enrolment.enrol(store, self.bridge.url, self.bridge.idp.token(self.user, []))
        session = BridgeSession(store, now=now)
        session.login()
        return session


def policy_text(world: World, user: str, caseloads: list[str], extra: str) -> str:
    return POLICY.format(run=world.run, user=user, caseloads=", ".join(caseloads),
                         extra=extra)


@pytest.fixture
def field(make_bridge: Callable[..., BridgeServer], world: World, admin: CouchClient,
          caseload_ids: Callable[[], str], new_store: Callable[[], DeviceStore]) -> Field:
    ids = [caseload_ids(), caseload_ids()]
    for caseload_id in ids:
        Provisioner(admin).create(caseload_id, name="Working-set test")
    user = world.user(f"ws{ids[0][-6:]}")
    bridge = make_bridge(policy_text(world, user, ids[:1], ""))
    return Field(bridge, world, user, ids[:1], admin, new_store, ids[1])


def note(db: Database, text: str, *, days_ago: float = 0, subject: str = "patient-001",
         **extra: Any) -> str:
    """A progress note by a colleague, on the server (written as the admin: its `at` is
    days ago, as a note synced late would be)."""
    doc = envelope("progress_note", "colleague", "tablet-9", subject=subject, text=text,
                   at=iso(datetime.now(UTC) - timedelta(days=days_ago)), **extra)
    put(db, doc)
    return str(doc["_id"])


def photo(data: bytes) -> dict[str, Any]:
    return {"wound.jpg": {"content_type": "image/jpeg",
                          "data": base64.b64encode(data).decode()}}


def sealed_bodies(store: DeviceStore, doc_id: str) -> list[bytes]:
    return [bytes(row[0]) for row in store.conn.execute(
        "SELECT body FROM revs WHERE doc_id = ? AND body IS NOT NULL", (doc_id,))]


def assert_gone_from_files(store: DeviceStore, secrets: list[bytes]) -> None:
    """None of ``secrets`` (plaintext, ids, or a removed body's ciphertext) is anywhere in
    the store's files: the database, its write-ahead log, its shared memory."""
    store.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
    for path in store.path.parent.iterdir():
        data = path.read_bytes()
        for secret in secrets:
            # A 32-byte slice of a ciphertext is as good as all of it; plaintext in full.
            probe = secret[16:48] if len(secret) > 64 else secret
            assert probe not in data, f"{secret[:40]!r} found in {path.name}"


def held(session: BridgeSession, name: str) -> set[str]:
    return set(session.store.database(name).doc_ids())


def sync(session: BridgeSession, name: str) -> Any:
    return session.device(options=fast_options()).sync(name)


# -- each way the working set shrinks -------------------------------------------------------


def test_the_time_window_slides_offline_and_the_old_note_leaves_the_store(
        field: Field) -> None:
    recent = note(field.db(), "recent visit, wound healing well", days_ago=2)
    older = note(field.db(), "Quentin-Ravel dressing changed, heavy exudate", days_ago=6)
    device = field.session()
    assert sync(device, field.name()).ok
    assert {recent, older} <= held(device, field.name())
    ciphertext = sealed_bodies(device.store, older)
    assert ciphertext

    # Two days on, offline: the window (7 days) has slid past the older note.
    two_days_on = BridgeSession(device.store, now=lambda: time.time() + 2 * 86400)
    device.store.set_offline(True)
    report = two_days_on.device(options=fast_options()).sync(field.name())
    assert report.state is SyncState.OFFLINE
    assert report.removed is not None and report.removed.counts == {working_set.Removal.WINDOW: 1}
    assert held(device, field.name()) == {recent}
    assert_gone_from_files(device.store, [b"Quentin-Ravel", older.encode(), *ciphertext])
    # Nothing was written to the server: the note is there, undeleted.
    assert field.db().get(older)["text"].startswith("Quentin-Ravel")
    removed = working_set.removal_record(device.store)[field.name()]
    assert removed["total"] == {"window": 1} and removed["last"]["records"] == 1


def test_an_unpinned_patient_and_narrowed_types_leave_the_device(field: Field) -> None:
    field.policy(extra="      pinned_subjects: [patient-pinned]\n")
    pinned_old = note(field.db(), "pinned patient, seen a month ago", days_ago=30,
                      subject="patient-pinned")
    plan = envelope("care_plan", "colleague", "tablet-9", title="Leg ulcer",
                    goals=["heal"], changed={"title": {"by": "colleague", "at": iso(
                        datetime.now(UTC))}, "goals": {"by": "colleague",
                                                       "at": iso(datetime.now(UTC))}})
    put(field.db(), plan)
    recent = note(field.db(), "recent note", days_ago=1)
    device = field.session()
    assert sync(device, field.name()).ok
    assert held(device, field.name()) >= {pinned_old, plan["_id"], recent}

    # The patient is unpinned: their month-old note goes; the rest stays.
    field.policy()
    device.login()
    report = sync(device, field.name())
    assert report.ok, report.message
    assert report.removed is not None and report.removed.counts == {working_set.Removal.UNPINNED: 1}
    assert pinned_old not in held(device, field.name())

    # The policy narrows the types the device holds: notes go, the care plan stays.
    field.policy(extra="      types: [observation, care_plan]\n")
    device.login()
    report = sync(device, field.name())
    assert report.ok and report.removed is not None
    assert report.removed.counts == {working_set.Removal.TYPE: 1}
    assert held(device, field.name()) == {plan["_id"]}
    assert field.db().get(recent)["text"] == "recent note"  # the server keeps everything


def test_a_caseload_leaving_the_snapshot_leaves_the_store_except_unconfirmed_work(
        field: Field) -> None:
    field.caseloads.append(field.spare)
    field.policy()
    kept = note(field.db(0), "first caseload note", days_ago=1)
    gone = note(field.db(1), "Marchbanks second caseload note", days_ago=1)
    device = field.session()
    assert all(r.ok for r in device.device(options=fast_options()).sync_all())
    assert gone in held(device, field.name(1))
    ciphertext = sealed_bodies(device.store, gone)

    # Offline, the nurse writes in the second caseload; then it leaves the policy.
    device.store.set_offline(True)
    mine = device.device().new_record(field.name(1), "progress_note", {
        "subject": "patient-002", "text": "written offline, not yet sent"})
    device.store.set_offline(False)
    field.policy(caseloads=[field.caseloads[0]])
    device.login()
    reports = {r.database: r for r in device.device(options=fast_options()).sync_all()}
    second_report = reports[field.name(1)]
    # The unsent note keeps the database; everything else of it is gone.
    assert second_report.state is SyncState.POLICY
    assert "1 record with changes the server has not confirmed is kept" in \
        second_report.message
    assert held(device, field.name(1)) == {mine["_id"]}
    assert_gone_from_files(device.store, [b"Marchbanks", gone.encode(), *ciphertext])
    assert held(device, field.name(0)) == {kept}
    heard = fleet_entry(field, device, 1)
    assert (heard["state"], heard["held_back"], heard["removed"]) == ("policy", 1, 1)

    # IT restores the grant for a moment; the note reaches the server ...
    field.policy()
    device.login()
    assert sync(device, field.name(1)).ok
    assert field.db(1).get(mine["_id"])["text"] == "written offline, not yet sent"
    # ... and when it goes again, the database leaves the store entirely.
    field.policy(caseloads=[field.caseloads[0]])
    device.login()
    report = sync(device, field.name(1))
    assert report.state is SyncState.RELEASED and report.ok
    assert field.name(1) not in device.store.database_names()
    assert working_set.removal_record(device.store)[field.name(1)]["released"] is True
    # IT sees it too: a release is a sync that did what the policy asked, not a failure.
    heard = fleet_entry(field, device, 1)
    assert (heard["state"], heard["result"], heard["pending"]) == ("released", "ok", 0)
    assert heard["removed"] == 1  # the note written offline, once the server held it


def fleet_entry(field: Field, device: BridgeSession, index: int) -> dict[str, Any]:
    """What the bridge heard of the device's newest sync of caseload ``index`` (issue 13),
    once the device sent its queued reports (as ``carecouch-device sync`` does)."""
    reports.send(device.store, device)
    status = FleetStore(field.admin).statuses()[device.store.device_id]
    entry: dict[str, Any] = status["databases"][field.name(index)]
    return entry


def test_a_record_whose_change_the_server_lacks_stays_until_confirmed(field: Field) -> None:
    field.policy(extra="      types: [observation, care_plan]\n")
    device = field.session()
    device.store.set_offline(True)
    mine = device.device().new_record(field.name(), "progress_note", {
        "subject": "patient-003", "text": "Oyelaran visit, written offline"})
    report = sync(device, field.name())
    assert report.removed is not None and report.removed.held_back == 1
    assert mine["_id"] in held(device, field.name())
    assert device.store.database(field.name()).state(mine["_id"], mine["_rev"]) == "saved"

    # Online: pushed, confirmed, and only then removed (the same sync).
    device.store.set_offline(False)
    report = sync(device, field.name())
    assert report.ok and report.push.docs_written == 1
    assert report.removed is not None and report.removed.counts == {working_set.Removal.TYPE: 1}
    assert field.db().get(mine["_id"])["text"] == "Oyelaran visit, written offline"
    assert mine["_id"] not in held(device, field.name())


def test_an_open_refusal_keeps_its_record(field: Field) -> None:
    device = field.session()
    device.store.set_offline(True)
    mine = device.device().new_record(field.name(), "progress_note", {
        "subject": "patient-004", "text": "written before the policy changed"})
    device.store.set_offline(False)
    # IT narrows what the nurse may write and what the device holds; the note, saved under
    # the old policy, is refused when it is pushed.
    field.bridge.write_policy(policy_text(field.world, field.user, field.caseloads, "").replace(
        "    clinical_roles: [nurse]\n",
        "    clinical_roles: [nurse]\n    record_types: [observation]\n").replace(
        "      time_window: 7d\n", "      time_window: 7d\n      types: [observation]\n"))
    device.login()
    report = sync(device, field.name())
    assert report.rejected == 1 and report.refused[0]["id"] == mine["_id"]
    # Outside the working set now, but refused and not yet acted on: it stays.
    assert report.removed is not None and report.removed.held_back == 1
    assert mine["_id"] in held(device, field.name())
    assert device.device().rejections(field.name())[0].doc_id == mine["_id"]


# -- attachment retention -------------------------------------------------------------------


def test_a_photo_leaves_the_device_after_its_retention_and_comes_back_online(
        field: Field) -> None:
    field.policy(extra="      attachment_retention: 1h\n")
    image = b"\xff\xd8\xff\xe0 wound photo of Mrs Quackenbush " + bytes(range(256)) * 40
    with_photo = note(field.db(), "wound measured, photo attached", days_ago=1,
                      _attachments=photo(image))
    device = field.session()
    assert sync(device, field.name()).ok
    local = device.store.database(field.name())
    assert device.device().attachment(field.name(), with_photo, "wound.jpg") == image
    # A photo this device took and has not sent yet is never taken.
    device.store.set_offline(True)
    own_image = b"own photo, not yet sent " + bytes(range(256)) * 10
    own = device.device().new_record(field.name(), "progress_note", {
        "subject": "patient-005", "text": "photo taken offline",
        "_attachments": photo(own_image)})
    ciphertext = sealed_bodies(device.store, with_photo)

    holding = device.device().policy.holding(field.name(), None)
    assert holding is not None and holding.attachment_retention == 3600
    # Within the retention nothing goes; past it, the server's photo does.
    soon = working_set.minimise(local, holding, None, datetime.now(UTC) + timedelta(minutes=30))
    assert soon.counts == {}
    later = working_set.minimise(local, holding, None, datetime.now(UTC) + timedelta(hours=2))
    assert later.counts == {working_set.Removal.ATTACHMENTS: 1}
    stub = local.get(with_photo)["_attachments"]["wound.jpg"]
    assert stub["stub"] is True and "data" not in stub and stub["length"] == len(image)
    assert local.get(with_photo)["text"] == "wound measured, photo attached"  # the record stays
    assert "data" in local.get(own["_id"])["_attachments"]["wound.jpg"]
    assert_gone_from_files(device.store, [image[4:60], *ciphertext])

    # Offline, the device says how to get it back; online, it fetches and checks it.
    with pytest.raises(DeviceOffline, match="retention"):
        device.device().attachment(field.name(), with_photo, "wound.jpg")
    device.store.set_offline(False)
    assert device.device().attachment(field.name(), with_photo, "wound.jpg") == image
    assert "data" in local.get(with_photo)["_attachments"]["wound.jpg"]


def test_the_attachment_command_writes_the_photo_or_says_why_not(
        field: Field, tmp_path: Any, monkeypatch: pytest.MonkeyPatch, device_cli: Invoke) -> None:
    field.policy(extra="      attachment_retention: 1h\n")
    image = b"photo bytes " * 100
    doc_id = note(field.db(), "with photo", days_ago=1, _attachments=photo(image))
    session = field.session()
    path = session.store.path
    assert sync(session, field.name()).ok
    local = session.store.database(field.name())
    holding = session.device().policy.holding(field.name(), None)
    working_set.minimise(local, holding, None, datetime.now(UTC) + timedelta(hours=2))
    session.store.set_offline(True)
    session.store.close()
    monkeypatch.setenv("CARECOUCH_DEVICE_STORE", str(path))
    out = tmp_path / "wound.jpg"
    refused = device_cli("attachment", doc_id, "wound.jpg", "--out", str(out),
                         "--db", field.name())
    assert refused.exit_code == 1 and "go online" in refused.output
    assert len(refused.output.strip().splitlines()) == 1 and not out.exists()
    device_cli("online")
    written = device_cli("--json", "attachment", doc_id, "wound.jpg", "--out", str(out),
                         "--db", field.name())
    assert written.exit_code == 0, written.output
    assert out.read_bytes() == image and json.loads(written.output)["bytes"] == len(image)
    digest = "md5-" + base64.b64encode(hashlib.md5(image).digest()).decode()  # noqa: S324
    assert field.db().get(doc_id)["_attachments"]["wound.jpg"]["digest"] == digest


# -- what the clinician is told ------------------------------------------------------------


def test_status_and_the_sync_report_say_what_was_removed_and_why(
        field: Field, device_cli: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    for index in range(3):
        note(field.db(), f"note {index}", days_ago=1)
    device = field.session()
    assert sync(device, field.name()).ok
    field.policy(extra="      types: [observation, care_plan]\n")
    device.login()
    path = device.store.path
    device.store.close()
    monkeypatch.setenv("CARECOUCH_DEVICE_STORE", str(path))
    synced = device_cli("--json", "sync", "-q")
    assert synced.exit_code == 0, synced.output
    report = json.loads(synced.output)[0]
    assert report["removed"]["type"] == 3 and report["removed"]["records"] == 3
    text = device_cli("status")
    assert "removed from this device: 3 record type no longer held" in text.output
    status = json.loads(device_cli("--json", "status").output)
    assert status["databases"][0]["removed"]["total"] == {"type": 3}


def test_an_upgraded_store_keeps_its_attachments_until_a_pass_looks(
        new_store: Callable[[], DeviceStore]) -> None:
    """A store made before schema 3 gains the retention columns; its leaves count as held
    by the server from the upgrade."""
    store = new_store()
    local = store.add_database("caseload_x", "http://127.0.0.1:1")
    local.put({"_id": "progress_note:a", "type": "progress_note", "text": "x",
               "_attachments": photo(b"data")})
    for column in ("atts", "confirmed_at"):
        store.conn.execute("DROP INDEX IF EXISTS revs_attachments")
        store.conn.execute(f"ALTER TABLE revs DROP COLUMN {column}")
    store.set_meta("schema_version", "2")
    path = store.path
    store.close()
    reopened = DeviceStore.open(path)
    try:
        assert reopened.get_meta("schema_version") == "3"
        row = reopened.conn.execute("SELECT atts, confirmed_at FROM revs").fetchone()
        assert row == (1, None)  # not yet on the server: no retention clock
    finally:
        reopened.close()
