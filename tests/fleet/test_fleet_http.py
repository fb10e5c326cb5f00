"""The bridge's fleet endpoints over real HTTP: devices' reports in (signed, idempotent),
``/v1/devices`` for policy admins, ``/metrics`` for a scraper with the token; nobody else
sees anything."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from carecouch.clock import format_utc
from carecouch.fleet import DDOC, day_db
from mobile_stub import reports
from mobile_stub.errors import BridgeError
from tests.helpers.bridge_client import assert_documented
from tests.helpers.bridges import BridgeServer

from .support import METRICS_TOKEN, Scenario


def report(**fields: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"id": uuid.uuid4().hex, "database": "caseload_x", "state": "ok",
            "started_at": format_utc(now - timedelta(seconds=3)), "ended_at": format_utc(now),
            "pulled": 1, "pushed": 0, **fields}


def test_a_report_sent_twice_is_stored_once(scenario: Scenario) -> None:
    fleet = scenario.fleet
    session, _ = fleet.device("india", group="medics")
    west = f"f{fleet.run}-elsewhere"  # not the scenario's: their counts stay as they are
    sent = report(database=f"caseload_{west}", refused={"auth.role_required": 2})
    first = session.post(reports.PATH, {"reports": [sent]}).body
    again = session.post(reports.PATH, {"reports": [sent]}).body
    assert (first["stored"], again["stored"], again["duplicates"]) == ([sent["id"]], [],
                                                                        [sent["id"]])
    db = fleet.admin.db(day_db(datetime.now(UTC)))
    rows = db.all_docs(key=f"report:{session.store.device_id}:{sent['id']}")["rows"]
    assert len(rows) == 1
    codes = db.view(DDOC, "aggregates", group_level=4, startkey=["refused", west],
                    endkey=["refused", west, {}])["rows"]
    assert sum(r["value"]["sum"] for r in codes if r["key"][3] == "auth.role_required") == 2
    # Older than the retention period: heard, not kept; a day ahead of the bridge: refused.
    old = report(started_at="2020-01-01T00:00:00Z", ended_at="2020-01-01T00:00:05Z")
    ahead = report(started_at=format_utc(datetime.now(UTC) + timedelta(days=3)),
                   ended_at=format_utc(datetime.now(UTC) + timedelta(days=3, seconds=2)))
    answer = session.post(reports.PATH, {"reports": [old, ahead]}).body
    assert answer == {"stored": [], "duplicates": [], "expired": [old["id"]],
                      "refused": [{"id": ahead["id"], "error": "report.future"}]}


def test_the_queue_holds_codes_never_reasons(scenario: Scenario) -> None:
    """bravo's refused write: its queued report names the rule's code, not the reason
    (which quotes the patient), and was in the clear in the store's meta rows."""
    queued = scenario.queued_before_send["bravo"]
    north = [r for r in queued if r["database"] == scenario.fleet.db("north")]
    assert north[-1]["refused"] == {"fleet.refused": 1} and north[-1]["refused_open"] == 1
    text = json.dumps(queued)
    assert "patient" not in text and "refused_open" in text
    # Everything it queued reached the bridge: the queue is empty now.
    for name in ("alpha", "bravo", "echo", "foxtrot"):
        assert scenario.queued_before_send[name]  # something was queued ...
    session, _ = scenario.fleet.device("juliet", group="medics")
    assert reports.queued(session.store) == []  # ... and a fresh device has nothing


def test_reports_must_be_signed_and_well_formed(scenario: Scenario) -> None:
    fleet = scenario.fleet
    url = fleet.bridge.url + reports.PATH
    unsigned = httpx.post(url, json={"reports": [report()]})
    assert unsigned.status_code == 401
    assert unsigned.json()["error"] == "device.signature_required"
    session, _ = fleet.device("kilo", group="medics")
    for body, code in [({"reports": []}, "request.bad_field"),
                       ({"reports": [report(state="offline")]}, "report.bad"),
                       ({"reports": [report(pulled=-1)]}, "report.bad"),
                       ({"reports": [report(reason="the patient said ...")]}, "report.bad"),
                       ({"reports": [report(started_at="yesterday")]}, "report.bad")]:
        with pytest.raises(BridgeError) as refused:
            session.post(reports.PATH, body)
        assert (refused.value.status, refused.value.code) == (400, code), refused.value
        assert "\n" not in str(refused.value)


def test_v1_devices_is_for_policy_admins_only(scenario: Scenario) -> None:
    fleet = scenario.fleet
    url = fleet.bridge.url + "/v1/devices"
    nobody = httpx.get(url)
    assert nobody.status_code == 401 and nobody.json()["error"] == "auth.missing_token"
    nurse = httpx.get(url, headers={"Authorization": "Bearer " + fleet.token(
        f"alpha-{fleet.run}", "nurses-{run}")})
    assert nurse.status_code == 403 and nurse.json()["error"] == "auth.not_admin"
    assert "devices" not in nurse.json()
    found = httpx.get(url, headers={"Authorization": "Bearer " + fleet.admin_token()})
    assert found.status_code == 200
    assert_documented(fleet.bridge.url, "/v1/devices", found)
    rows = {r["device"]: r for r in found.json()["devices"]}
    echo = rows[scenario.devices["echo"]]
    assert (echo["pending"], echo["last_result"]) == (2, "stopped")
    assert rows[scenario.devices["alpha"]]["label"] == "Ward 3 tablet"


def _metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_for_the_scraper_with_the_token(scenario: Scenario, bridge: BridgeServer
                                                ) -> None:
    fleet = scenario.fleet
    url = fleet.bridge.url + "/metrics"
    assert httpx.get(url).status_code == 401
    wrong = httpx.get(url, headers={"Authorization": "Bearer not-the-token"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "auth.bad_token"
    admin = httpx.get(url, headers={"Authorization": "Bearer " + fleet.admin_token()})
    assert admin.status_code == 401  # an identity token is not the scraper's
    answer = httpx.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = _metrics(answer.text)
    north, south = fleet.caseloads["north"], fleet.caseloads["south"]

    def value(name: str, **labels: str) -> float:
        return found[(f"carecouch_fleet_{name}", frozenset(labels.items()))]

    assert value("syncs_24h", caseload=north, result="ok") == 7
    assert value("syncs_24h", caseload=north, result="stopped") == 2
    assert value("sync_success_ratio_24h", caseload=north) == 0.7
    assert value("refused_writes_24h", caseload=north, code="fleet.refused") == 1
    assert value("conflicted_records", caseload=south) == 1
    assert value("devices_with_pending_changes", caseload=north) == 1
    assert value("device_pending_changes", device=scenario.devices["echo"]) == 2
    assert value("break_glass_24h", caseload=fleet.caseloads["east"]) == 1
    assert value("sync_duration_seconds_24h", caseload=north, quantile="0.95") > 0
    # A bridge without the setting has nothing to scrape.
    off = httpx.get(bridge.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert off.status_code == 404 and off.json()["error"] == "metrics.disabled"
