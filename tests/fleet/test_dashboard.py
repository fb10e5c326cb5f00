"""The dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core
(tests/helpers/dashboard_browser.js) against the fleet bridge, for the known fleet of
conftest.scenario. Nobody but a policy admin sees the fleet; the admin sees it at a glance.
The screenshot stays in the test's tmp dir (its path is printed) for a person to look at."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from carecouch.embedded import project_root

from .support import Scenario

SCRIPT = Path(__file__).resolve().parent.parent / "helpers" / "dashboard_browser.js"
CHROMIUM = Path("/usr/bin/chromium")


def browse(scenario: Scenario, out: Path, **extra: Any) -> dict[str, Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: run ./dev install", pytrace=False)
    fleet = scenario.fleet
    args = {"url": fleet.bridge.url, "admin": fleet.admin_token(), "out": str(out),
            "nurse": fleet.token(f"alpha-{fleet.run}", "nurses-{run}"), **extra}
    done = subprocess.run(["node", str(SCRIPT), json.dumps(args)], capture_output=True,
                          text=True, timeout=180, cwd=project_root())
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout)
    return found


@pytest.fixture(scope="module")
def pages(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("dashboard")
    return browse(scenario, out, caseload=scenario.fleet.caseloads["north"])


def test_nobody_and_a_nurse_see_nothing_of_the_fleet(pages: dict[str, Any],
                                                     scenario: Scenario) -> None:
    anonymous = pages["anonymous"]
    assert (anonymous["status"], anonymous["form"]) == (200, 1)
    assert "Sign in" in anonymous["text"] and "policy admins" in anonymous["text"]
    nurse = pages["nurse"]
    assert nurse["status"] == 403
    assert "is not a policy admin" in nurse["text"] and nurse["cookies"] == 0
    for text in (anonymous["text"], nurse["text"]):
        assert scenario.devices["echo"] not in text
        assert scenario.fleet.caseloads["north"] not in text
        assert "Sync success" not in text


def test_the_admin_sees_the_fleet_at_a_glance(pages: dict[str, Any],
                                              scenario: Scenario) -> None:
    admin = pages["admin"]
    assert admin["status"] == 200 and admin["url"].endswith("/dashboard")
    assert admin["cookie"] == [{"name": "carecouch_dashboard", "httpOnly": True,
                                "sameSite": "Strict", "path": "/dashboard"}]
    # Nothing fetched from anywhere else: no CDN, no script.
    assert all(u.startswith(scenario.fleet.bridge.url) for u in admin["requests"])
    tiles = {t["label"]: t for t in admin["tiles"]}
    assert list(tiles) == ["Devices", "Sync success, 14 d", "Sync duration p50 / p95",
                           "Conflicted records now", "Devices with pending changes",
                           "Break-glass, 14 d"]
    # Devices needing attention first: echo (stopped, pending) and bravo (refused).
    attention = {r["device"]: r for r in admin["attention"]}
    echo, bravo = scenario.devices["echo"], scenario.devices["bravo"]
    assert attention[echo]["severity"] == "failing"
    assert "last sync stopped (unreachable)" in attention[echo]["text"]
    assert "1 refused write waiting" in attention[bravo]["text"]
    assert scenario.devices["alpha"] not in attention
    order = [r["device"] for r in admin["attention"]]
    assert order.index(echo) < order.index(scenario.devices["delta"])  # failing before watch
    caseloads = {r["id"]: r["cells"] for r in admin["caseloads"]}
    north = caseloads[scenario.fleet.caseloads["north"]]
    assert north[:3] == [scenario.fleet.caseloads["north"], "10", "70.0%"]
    south = caseloads[scenario.fleet.caseloads["south"]]
    assert south[2] == "80.0%" and south[6] == "1"   # success, conflicts now
    assert caseloads[scenario.fleet.caseloads["east"]][10] == "1"  # break-glass
    charts = {c["label"]: c for c in admin["charts"]}
    assert charts["Syncs per day by result"]["bars"] >= 3   # ok, refused, stopped today
    assert charts["Sync duration per day"]["points"] >= 2   # p50 and p95 today
    assert charts["Conflicted records per day"]["bars"] >= 1
    assert Path(admin["screenshot"]).stat().st_size > 10_000
    print(f"dashboard screenshot: {admin['screenshot']}")


def test_one_caseload(pages: dict[str, Any], scenario: Scenario) -> None:
    north = scenario.fleet.caseloads["north"]
    assert pages["caseload"]["heading"] == f"Caseload {north}"
    tiles = {t["label"]: t["value"] for t in pages["caseload"]["tiles"]}
    assert tiles["Sync success, 7 d"] == "70.0%"
    assert tiles["Devices with pending changes"] == "1"


def test_refusals_are_one_json_shape_for_programs(scenario: Scenario) -> None:
    url = scenario.fleet.bridge.url + "/dashboard"
    nurse = httpx.get(url, headers={"Authorization": "Bearer " + scenario.fleet.token(
        f"alpha-{scenario.fleet.run}", "nurses-{run}")})
    assert nurse.status_code == 403 and nurse.json()["error"] == "auth.not_admin"
    bad = httpx.get(url, headers={"Authorization": "Bearer nonsense"})
    assert bad.status_code == 401 and set(bad.json()) == {"error", "message", "details"}
    days = httpx.get(url + "?days=0")
    assert days.status_code == 400 and days.json()["details"] == {"field": "days"}
    login = httpx.post(url + "/login", data={"token": "nonsense"},
                       headers={"Accept": "text/html"})
    assert login.status_code == 401 and "text/html" in login.headers["content-type"]
    assert "Sign in" in login.text and not login.cookies.get("carecouch_dashboard")
    assert login.headers["content-security-policy"].startswith("default-src 'none'")
