"""Critical updates first (docs/device.md): a device coming back online pulls the records the
registry marks urgent (new orders, controlled-drug checks, changed care plans, observations
whose NEWS2 calls for an urgent response) before its backlog, and keeps pulling them while the
backlog runs; only what its own filter would give it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from carecouch.couch import CouchClient, Database
from carecouch.ddocs import DEVICE_FILTER
from carecouch.ids import caseload_db, member_role
from carecouch.provisioning import Provisioner
from carecouch.records import load_registry
from carecouch.working_set import urgent_selector
from mobile_stub.device import Device
from mobile_stub.replication import ReplicationFilter
from mobile_stub.replication.replicator import _UrgentPull
from tests.helpers.devices import fast_options
from tests.helpers.fixtures import User
from tests.helpers.records import iso, observation, order_signoff

BACKLOG = 1200


@pytest.fixture
def ward_db(admin: CouchClient, caseload_ids: Callable[[], str]) -> Database:
    """A provisioned caseload's database, as the server admin."""
    caseload_id = caseload_ids()
    Provisioner(admin).create(caseload_id, name="Urgent-first test")
    return admin.db(caseload_db(caseload_id))


def window(days: int = 30) -> str:
    return iso(datetime.now(UTC) - timedelta(days=days)).replace(".000Z", "Z")[:19] + "Z"


def device_on(ward_db: Database, make_device: Callable[..., Device],
              make_user: Callable[..., User], **params: str) -> Device:
    caseload_id = ward_db.name.removeprefix("caseload_")
    nurse = make_user(roles=[member_role(caseload_id), "clinical:nurse"])
    return make_device(ward_db, nurse, filter=ReplicationFilter.design(
        DEVICE_FILTER, not_before=window(), **params),
        options=fast_options(batch_size=100, first_batch=100, bulk_get_size=100))


def backlog(ward_db: Database, count: int = BACKLOG) -> None:
    docs = [observation("colleague", "tablet-2") for _ in range(count)]
    for start in range(0, count, 500):
        for item in ward_db.bulk_docs(docs[start:start + 500]):
            assert item.get("ok"), item


def test_an_order_and_an_escalation_arrive_before_the_backlog(
        ward_db: Database, make_device: Callable[..., Device],
        make_user: Callable[..., User]) -> None:
    device = device_on(ward_db, make_device, make_user)
    backlog(ward_db)
    order = order_signoff("carecouch-bridge")
    ward_db.put(order)
    sick = observation("colleague", "tablet-2", respiration_rate=26, spo2=91)  # NEWS2 >= 5
    assert sick["news2"] >= 5
    ward_db.put(sick)
    seen: list[set[str]] = []
    local = device.store.database(ward_db.name)
    device.replicator.on_progress = lambda report: seen.append(set(local.doc_ids()))

    report = device.sync(ward_db.name)
    assert report.ok, report.message
    assert report.urgent.docs_written == 2
    # After the first backlog batch, both were already there: they came first.
    assert seen and {order["_id"], sick["_id"]} <= seen[0]
    assert len(seen[0]) <= 2 + 100 + 100  # the urgent two, a batch or two of the backlog
    assert len(local.doc_ids()) == BACKLOG + 2


def test_an_order_made_while_the_backlog_runs_arrives_before_it_ends(
        ward_db: Database, make_device: Callable[..., Device], make_user: Callable[..., User],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_UrgentPull, "EVERY", 0.0)  # every batch, not every second
    device = device_on(ward_db, make_device, make_user)
    backlog(ward_db)
    local = device.store.database(ward_db.name)
    order = order_signoff("carecouch-bridge")
    batches: list[tuple[int, bool]] = []

    def progress(report: object) -> None:
        if len(batches) == 1:
            ward_db.put(order)  # the prescriber signs it while the device is catching up
        batches.append((len(local.doc_ids()), order["_id"] in local.doc_ids()))

    device.replicator.on_progress = progress
    report = device.sync(ward_db.name)
    assert report.ok, report.message
    arrived = next(i for i, (_, present) in enumerate(batches) if present)
    held_then = batches[arrived][0]
    assert held_then < BACKLOG, "the order waited for the whole backlog"
    assert report.urgent.docs_written == 1


def test_the_urgent_pull_stays_inside_the_device_filter(
        ward_db: Database, make_device: Callable[..., Device],
        make_user: Callable[..., User]) -> None:
    device = device_on(ward_db, make_device, make_user, types="observation")
    ward_db.put(order_signoff("carecouch-bridge"))
    old_sick = observation("colleague", "tablet-2", respiration_rate=26, spo2=91,
                           at=iso(datetime.now(UTC) - timedelta(days=60)))
    ward_db.put(old_sick)  # urgent, but older than the window: not this device's
    report = device.sync(ward_db.name)
    assert report.ok and report.urgent.docs_written == 0
    assert device.store.database(ward_db.name).doc_ids() == []


def test_the_urgent_selector_is_the_registry_within_the_filter() -> None:
    registry = load_registry()
    assert {name for name, spec in registry.types.items() if spec.urgent} == {
        "observation", "care_plan", "order_signoff", "cd_check"}
    selector = urgent_selector(registry, {"types": "observation,task",
                                          "not_before": "2026-01-01T00:00:00Z"})
    assert selector == {"type": "observation", "news2": {"$gte": 5},
                        "at": {"$gte": "2026-01-01T00:00:00Z"}}
    assert urgent_selector(registry, {"types": "task,progress_note"}) is None
