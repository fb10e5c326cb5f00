"""``carecouch fleet``: what IT reads of the known fleet (conftest.scenario), from real
devices' reports, the bridge's audit trail and CouchDB's own views."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from carecouch.fleet import DAY_PREFIX, FleetStore
from carecouch.fleet_alerts import check, load_rules

from .support import Scenario


@pytest.fixture
def carecouch(run_cli: Callable[..., Result]) -> Callable[..., Result]:
    """``carecouch("fleet", ...)`` against the test server (tests/helpers/caseloads.py)."""
    return run_cli


def mine(rows: list[dict[str, Any]], scenario: Scenario) -> dict[str, dict[str, Any]]:
    ids = {v: k for k, v in scenario.devices.items()}
    return {ids[r["device"]]: r for r in rows if r["device"] in ids}


def test_fleet_devices_shows_each_device_as_it_synced(carecouch: Any,
                                                      scenario: Scenario) -> None:
    result = carecouch("fleet", "devices", "--json")
    assert result.exit_code == 0, result.output
    rows = mine(json.loads(result.stdout), scenario)
    run = scenario.fleet.run
    north, south = scenario.fleet.caseloads["north"], scenario.fleet.caseloads["south"]
    alpha = rows["alpha"]
    assert (alpha["label"], alpha["clinician"], alpha["caseloads"]) == (
        "Ward 3 tablet", f"alpha-{run}", [north, south])
    assert (alpha["last_result"], alpha["pending"], alpha["refused"], alpha["severity"]) == (
        "ok", 0, 0, 0)
    assert alpha["credential_expires_at"] and alpha["offline_until"]
    assert rows["bravo"]["refused"] == 1
    assert rows["bravo"]["attention"] == ["1 refused write waiting"]
    assert rows["delta"]["conflicts"] == 1 and rows["delta"]["attention"] == [
        "1 conflicted record"]
    echo = rows["echo"]
    assert (echo["last_result"], echo["last_state"], echo["pending"]) == (
        "stopped", "unreachable", 2)
    assert "last sync stopped (unreachable)" in echo["attention"]
    # foxtrot's stopped sync arrived late, after a good one: the good one is its last.
    assert (rows["foxtrot"]["last_result"], rows["foxtrot"]["pending"]) == ("ok", 0)
    golf = rows["golf"]  # enrolled, never synced: nothing to say yet, not silent for a day
    assert (golf["last_result"], golf["last_contact_at"], golf["attention"]) == (None, None, [])
    # Needing attention first: echo and bravo (failing) before alpha (fine).
    order = [r["device"] for r in json.loads(result.stdout)]
    assert order.index(scenario.devices["echo"]) < order.index(scenario.devices["alpha"])
    assert order.index(scenario.devices["bravo"]) < order.index(scenario.devices["alpha"])

    text = carecouch("fleet", "devices").stdout
    line = next(ln for ln in text.splitlines() if scenario.devices["echo"] in ln)
    assert "stopped" in line and "last sync stopped (unreachable)" in line
    assert text.splitlines()[0].split()[:3] == ["DEVICE", "LABEL", "CLINICIAN"]


def test_fleet_summary_per_caseload(carecouch: Any, scenario: Scenario) -> None:
    north, south, east = (scenario.fleet.caseloads[k] for k in ("north", "south", "east"))
    result = carecouch("fleet", "summary", "--caseload", north, "--caseload", south,
                       "--caseload", east, "--json")
    assert result.exit_code == 0, result.output
    parts = {p["caseload"]: p for p in json.loads(result.stdout)["caseloads"]}
    syncs = parts[north]["syncs"]
    assert {k: syncs[k] for k in ("syncs", "ok", "refused", "stopped", "success_rate")} == {
        "syncs": 10, "ok": 7, "refused": 1, "stopped": 2, "success_rate": 0.7}
    assert syncs["p50_ms"] is not None and syncs["p95_ms"] >= syncs["p50_ms"]
    assert parts[north]["refusals"] == {"fleet.refused": 1}
    assert parts[north]["devices_pending"] == 1  # echo
    assert parts[south]["syncs"]["success_rate"] == 0.8
    assert parts[south]["conflicts_now"] == 1
    assert parts[south]["conflicts_per_day"][-1]["conflicts"] == 1
    assert parts[east]["break_glass"] == 1
    assert parts[east]["activity"]["credentials.issue"] == 1

    text = carecouch("fleet", "summary", "--caseload", north).stdout
    row = text.splitlines()[1].split()
    assert row[:3] == [north, "10", "70.0%"]


def test_fleet_summary_since_leaves_out_what_came_before(carecouch: Any,
                                                         scenario: Scenario) -> None:
    north = scenario.fleet.caseloads["north"]
    later = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = carecouch("fleet", "summary", "--caseload", north, "--since", later, "--json")
    assert result.exit_code == 2  # in the future
    assert result.stderr.startswith("error: --since") and result.stderr.count("\n") == 1
    hour_ago = (datetime.now(UTC) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = carecouch("fleet", "summary", "--caseload", north, "--since", hour_ago, "--json")
    assert json.loads(result.stdout)["caseloads"][0]["syncs"]["syncs"] == 10
    bad = carecouch("fleet", "summary", "--since", "yesterday")
    assert bad.exit_code == 2 and bad.stderr.count("\n") == 1


def _rules(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "alerts.yaml"
    path.write_text(text)
    return path


def test_fleet_check_prints_one_line_per_breach_and_exits_1(
        carecouch: Any, scenario: Scenario, tmp_path: Path) -> None:
    north, south = scenario.fleet.caseloads["north"], scenario.fleet.caseloads["south"]
    rules = _rules(tmp_path, """\
version: 1
rules:
  - name: success below 95%
    metric: success_rate
    per: caseload
    window: 1h
    below: 0.95
    min_syncs: 5
  - name: refused writes waiting
    metric: refused_writes
    above: 0
  - name: silent with pending
    metric: silent_with_pending
    silent_for: 1s
""")
    # A real wait: `carecouch fleet check` judges "silent for 1s" by the wall clock (the
    # functions under it take now=, the command does not).
    time.sleep(1.1)
    result = carecouch("fleet", "check", "--rules", str(rules))
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert f"success below 95%: caseload {north}: 70.0% of 10 syncs succeeded over 1h " \
           "(below 95.0%)" in lines
    assert f"success below 95%: caseload {south}: 80.0% of 10 syncs succeeded over 1h " \
           "(below 95.0%)" in lines
    bravo, echo = scenario.devices["bravo"], scenario.devices["echo"]
    run = scenario.fleet.run
    assert f"refused writes waiting: device {bravo} (bravo-{run}): 1 refused writes waiting " \
           "(above 0)" in lines
    assert any(ln.startswith(f"silent with pending: device {echo} (echo-{run}): silent for ")
               and ln.endswith("with 2 pending changes (over 1s)") for ln in lines)
    assert result.stderr.startswith("3 rules checked")

    quiet = _rules(tmp_path, "version: 1\nrules:\n  - name: spike\n    metric: break_glass\n"
                             "    window: 1h\n    above: 100000\n")
    calm = carecouch("fleet", "check", "--rules", str(quiet), "--json")
    assert calm.exit_code == 0 and json.loads(calm.stdout)["breaches"] == []


def test_the_shipped_rules_flag_a_device_silent_for_days_with_pending_changes(
        admin: Any, scenario: Scenario) -> None:
    later = datetime.now(UTC) + timedelta(days=4)
    found = check(admin, FleetStore(admin), load_rules(), now=later)
    echo = scenario.devices["echo"]
    mine_ = [b for b in found if b.scope == f"device {echo}"]
    assert [b.rule for b in mine_] == ["device silent 3 days with pending changes",
                                       "offline window passed"]
    assert mine_[0].line.endswith("silent for 4d with 2 pending changes (over 3d)")


@pytest.mark.parametrize("text, message", [
    ("version: 1\nrules:\n  - name: x\n    metric: nope\n", "alerts.yaml:4: x: unknown "
     "metric 'nope'"),
    ("version: 1\nrules:\n  - name: x\n    metric: success_rate\n", "alerts.yaml:3: x: "
     "success_rate needs 'below'"),
    ("version: 1\nrules:\n  - name: x\n    metric: silent\n    per: caseload\n",
     "alerts.yaml:5: x: silent is measured per device"),
    ("version: 1\nrules:\n  - name: x\n    metric: break_glass\n    above: -1\n",
     "alerts.yaml:5: '-1' must be a number of at least 0"),
    ("", "alerts.yaml: the rules file is empty"),
])
def test_a_bad_rules_file_is_one_line_with_its_line(carecouch: Any, tmp_path: Path,
                                                    text: str, message: str) -> None:
    result = carecouch("fleet", "check", "--rules", str(_rules(tmp_path, text)))
    assert result.exit_code == 1
    assert message in result.stderr and result.stderr.startswith("error: "), result.stderr
    assert result.stderr.count("\n") == 1


def test_purge_drops_whole_days_past_the_retention(carecouch: Any, admin: Any,
                                                   scenario: Scenario) -> None:
    store = FleetStore(admin, retention_days=30)
    old = f"{DAY_PREFIX}20200101"
    store._ensure(old)
    dry = carecouch("fleet", "purge", "--retention", "30", "--dry-run", "--json")
    assert old in json.loads(dry.stdout)["dropped"] and admin.db(old).exists()
    done = carecouch("fleet", "purge", "--retention", "30", "--yes")
    assert done.exit_code == 0 and f"dropped {old}" in done.stdout
    assert not admin.db(old).exists()
    today = f"{DAY_PREFIX}{datetime.now(UTC).strftime('%Y%m%d')}"
    assert admin.db(today).exists()  # the scenario's reports stay
    refused = carecouch("fleet", "purge", "--retention", "0")
    assert refused.exit_code == 2

