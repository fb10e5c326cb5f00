"""The reference device's side: ``carecouch-device sync`` queues a report of each sync and
sends the queue once the server answers; a stopped sync's report waits, and arrives late."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from carecouch.fleet import FleetStore
from mobile_stub import reports
from mobile_stub.cli import main
from tests.helpers.devices import PASSPHRASE

from .support import Scenario


def test_sync_sends_its_reports_and_a_stopped_one_arrives_late(
        scenario: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    fleet = scenario.fleet
    session, _ = fleet.device("lima", group="medics")  # west only: the scenario's stay as is
    store = session.store
    monkeypatch.setenv("CARECOUCH_DEVICE_PASSPHRASE", PASSPHRASE)
    runner = CliRunner()

    def device(*args: str) -> Any:
        result = runner.invoke(main, ["--store", str(store.path), "--json", *args],
                               catch_exceptions=False)
        return json.loads(result.stdout)

    fleet.proxy.outage_after(0)
    try:
        stopped = device("sync")
    finally:
        fleet.proxy.heal()
    assert {r["state"] for r in stopped} == {"unreachable"}
    waiting = reports.queued(store)
    assert [(r["database"], r["state"]) for r in waiting] == [(fleet.db("west"), "unreachable")]
    status = device("status")
    assert status["sync_reports_queued"] == 1
    assert FleetStore(fleet.admin).statuses().get(store.device_id) is None  # not heard yet

    synced = device("sync")
    assert {r["state"] for r in synced} == {"ok"}
    assert reports.queued(store) == []
    heard = FleetStore(fleet.admin).statuses()[store.device_id]
    latest = heard["databases"][fleet.db("west")]
    assert latest["result"] == "ok"
    assert latest["id"] != waiting[0]["id"]  # the late report did not replace the newer one
    assert latest["received_at"] >= waiting[0]["ended_at"]
