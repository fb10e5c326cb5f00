"""``carecouch-device`` checks a record with the caseload's own rules before it saves it, at
once and offline: a refused record names every problem and is not saved; an observation's
NEWS2 is worked out on the device and its clinical response shown."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from carecouch.ids import member_role
from mobile_stub.cli import main
from tests.helpers.fixtures import User
from tests.helpers.provisioned import Caseload
from tests.helpers.server import Server

Run = Callable[..., Result]
VITALS = ["respiration_rate=18", "spo2=96", "spo2_scale=1", "on_oxygen=false",
          "systolic_bp=128", "pulse=84", "consciousness=A", "temperature=37.2"]


@pytest.fixture
def run(tmp_path: Path, server: Server, caseload: Caseload, make_user: Callable[..., User],
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Run]:
    """A development store (no bridge) holding the caseload, as a nurse; created online, so
    it read the caseload's rules and its clock offset (init does)."""
    nurse = make_user(["clinical:nurse", member_role(caseload.id)])
    monkeypatch.setenv("CARECOUCH_DEVICE_STORE", str(tmp_path / "device" / "store.sqlite"))
    monkeypatch.setenv("CARECOUCH_DEVICE_PASSPHRASE", "a long enough test passphrase")
    monkeypatch.setenv("CARECOUCH_DEVICE_USER", nurse.name)
    monkeypatch.setenv("CARECOUCH_DEVICE_PASSWORD", nurse.password)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    made = invoke("--json", "init", "--server", server.url, "--db", caseload.db.name)
    assert made.exit_code == 0, made.output
    assert "the server's _design/carecouch" in json.loads(made.stdout)["rules"][
        caseload.db.name]
    yield invoke


def test_an_incomplete_record_is_refused_at_once_with_every_problem(run: Run) -> None:
    assert run("offline").exit_code == 0  # no server needed to know
    refused = run("record", "new", "observation", "--subject", "John Smith",
                  "--set", "pulse=80", "--set", "mood=fine")
    assert refused.exit_code == 1
    assert refused.stderr.count("\n") == 1
    for expected in ("envelope.bad_subject", "schema.unknown_field: an observation has no "
                     "field mood", "needs respiration_rate", "needs temperature",
                     "needs news2"):
        assert expected in refused.stderr
    as_json = run("--json", "record", "new", "observation", "--subject", "John Smith",
                  "--set", "pulse=80", "--set", "mood=fine")
    problems = json.loads(as_json.stdout)["refused"]["problems"]
    codes = [p["code"] for p in problems]
    # respiration_rate, spo2, spo2_scale, on_oxygen, systolic_bp, consciousness,
    # temperature and news2 (which cannot be scored without them)
    assert codes.count("schema.missing_field") == 8
    assert {"envelope.bad_subject", "schema.unknown_field"} <= set(codes)
    assert json.loads(as_json.stdout)["refused"]["reason"].startswith(codes[0])
    (db,) = json.loads(run("status", "--json").stdout)["databases"]
    assert (db["docs"], db["pending"]) == (0, 0)  # nothing was saved


def test_news2_is_worked_out_on_the_device_and_escalation_flagged(
        run: Run, caseload: Caseload) -> None:
    assert run("offline").exit_code == 0
    calm = run("--json", "record", "new", "observation", "--subject", "patient-7",
               *[f"--set={v}" for v in VITALS])
    assert calm.exit_code == 0, calm.output
    saved = json.loads(calm.stdout)
    assert (saved["news2"]["score"], saved["news2"]["response"]) == (0, "low")
    assert calm.stderr == ""  # nothing to flag

    septic = ["respiration_rate=25", "pulse=115", "spo2=94", "temperature=38.5"]
    high = run("record", "new", "observation", "--subject", "patient-7",
               *[f"--set={v}" for v in VITALS + septic])
    assert high.exit_code == 0, high.output
    assert high.stderr.startswith("NEWS2 7 — HIGH: emergency response")

    typed = run("record", "new", "observation", "--subject", "patient-7",
                *[f"--set={v}" for v in VITALS], "--set", "news2=1")
    assert typed.exit_code == 1
    assert "schema.derived_mismatch: field news2 must be 0" in typed.stderr

    assert run("online").exit_code == 0
    synced = json.loads(run("sync", "--json").stdout)
    assert synced[0]["push"]["docs_written"] == 2 and synced[0]["rejected"] == 0
    stored = caseload.db.get(saved["id"])
    assert stored["news2"] == 0


def test_a_store_made_offline_checks_with_the_shipped_rules_and_says_what_it_lacks(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Before its first contact the device knows neither the caseload's rules (the shipped ones
    # stand in) nor how far its clock is off, which every record must say.
    monkeypatch.setenv("CARECOUCH_DEVICE_STORE", str(tmp_path / "store.sqlite"))
    monkeypatch.setenv("CARECOUCH_DEVICE_PASSPHRASE", "a long enough test passphrase")
    monkeypatch.setenv("CARECOUCH_DEVICE_USER", "nurse1")
    monkeypatch.setenv("CARECOUCH_DEVICE_PASSWORD", "x")
    runner = CliRunner()
    made = runner.invoke(main, ["--json", "init", "--server", "http://127.0.0.1:9",
                                "--db", "caseload_x"])
    assert made.exit_code == 0, made.output
    assert "ships" in json.loads(made.stdout)["rules"]["caseload_x"]
    refused = runner.invoke(main, ["record", "new", "observation", "--subject", "patient-1",
                                   *[f"--set={v}" for v in VITALS]])
    assert refused.exit_code == 1
    assert "envelope.missing_field: every record needs clock_offset_ms (this device has " \
           "not yet talked to the server" in refused.stderr
