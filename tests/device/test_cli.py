"""``carecouch-device`` end to end against the real server: one-line errors, exit codes 0/1/2,
JSON where output is data (help on every command: tests/test_cli_help.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from carecouch.couch import Database
from mobile_stub.cli import main
from tests.helpers.devices import PASSPHRASE
from tests.helpers.fixtures import User
from tests.helpers.server import Server

Invoke = Callable[..., Result]


def test_a_day_offline_and_back(run: Invoke, server: Server, member_db: Database,
                                tmp_path: Path) -> None:
    assert run("init", "--server", server.url, "--db", member_db.name).exit_code == 0
    again = run("init", "--server", server.url, "--db", member_db.name)
    assert again.exit_code == 1 and again.stderr.count("\n") == 1
    assert "already exists" in again.stderr

    assert run("offline").exit_code == 0
    made = run("--json", "put", stdin=json.dumps({"type": "note", "subject": "patient:3",
                                                   "text": "seen at home"}))
    assert made.exit_code == 0, made.stderr
    record = json.loads(made.stdout)
    assert record["id"].startswith("note:")
    stopped = run("sync")
    assert stopped.exit_code == 1 and "offline" in stopped.stdout

    assert run("online").exit_code == 0
    synced = run("sync", "--json")
    assert synced.exit_code == 0, synced.output
    (report,) = json.loads(synced.stdout)
    assert report["state"] == "ok" and report["push"]["docs_written"] == 1
    assert member_db.get(record["id"])["text"] == "seen at home"

    status = json.loads(run("status", "--json").stdout)
    (db,) = status["databases"]
    assert (db["pending"], db["rejected"], db["last_sync"]["state"]) == (0, [], "ok")
    shown = json.loads(run("--json", "show", record["id"]).stdout)
    assert shown["state"] == "confirmed"
    assert shown["record"]["_rev"] == record["rev"] and "clock_offset_ms" in shown["record"]
    assert run("show", record["id"]).stdout.startswith(
        f"{record['id']} {record['rev']}: confirmed: the server holds this revision\n")

    assert run("wipe", "--dry-run").exit_code == 0
    assert run("wipe", "--yes").exit_code == 0
    gone = run("status")
    assert gone.exit_code == 1 and "no device store" in gone.stderr
    assert not (tmp_path / "device" / "store.sqlite").exists()


def test_usage_and_configuration_errors(run: Invoke, server: Server, member_db: Database,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    assert run("init", "--db", member_db.name).exit_code == 2
    with_password = run("init", "--server", "http://u:p@127.0.0.1:1", "--db", "x")
    assert with_password.exit_code == 2 and "without credentials" in with_password.stderr
    assert run("init", "--server", server.url, "--db", member_db.name).exit_code == 0
    monkeypatch.delenv("CARECOUCH_DEVICE_PASSWORD")
    missing = run("sync")
    assert missing.exit_code == 1 and "CARECOUCH_DEVICE_PASSWORD" in missing.stderr
    monkeypatch.setenv("CARECOUCH_DEVICE_PASSPHRASE", "wrong")
    wrong = run("status")
    assert wrong.exit_code == 1 and wrong.stderr.strip() == (
        "carecouch-device: error: wrong passphrase for this device store")


def test_a_store_without_the_bridge_cannot_make_an_exclusive_record(
        run: Invoke, server: Server, member_db: Database) -> None:
    # Only the bridge creates exclusive records (exclusive.js); the device says how, and
    # makes nothing the server would refuse.
    assert run("init", "--server", server.url, "--db", member_db.name).exit_code == 0
    refused = run("record", "new", "cd_check", "--subject", "patient-3",
                  "--set", "medication=morphine 10 mg", "--set", "expected_count=12")
    assert refused.exit_code == 1 and refused.stderr.count("\n") == 1, refused.output
    assert "the bridge creates it" in refused.stderr
    assert json.loads(run("status", "--json").stdout)["databases"][0]["docs"] == 0


@pytest.mark.parametrize(("passphrase", "says"), [
    ("short one", "at least 12 characters"),
    ("aaaaaaaaaaaaaaaa", "repeats one pattern"),
    ("123456789012345", "repeats one pattern"),
    ("Password 2024", "attackers try first"),
    ("correct horse battery staple", "attackers try first"),
])
def test_a_weak_store_passphrase_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            passphrase: str, says: str) -> None:
    monkeypatch.setenv("CARECOUCH_DEVICE_STORE", str(tmp_path / "weak" / "store.sqlite"))
    monkeypatch.setenv("CARECOUCH_DEVICE_PASSPHRASE", passphrase)
    made = CliRunner().invoke(main, ["init"])
    assert made.exit_code == 1 and made.stderr.count("\n") == 1
    assert says in made.stderr
    assert not (tmp_path / "weak" / "store.sqlite").exists()


def test_prompts_without_a_terminal_end_in_one_error_line(
        tmp_path: Path, server: Server, member_db: Database, member: User,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARECOUCH_DEVICE_STORE", str(tmp_path / "p" / "store.sqlite"))
    monkeypatch.delenv("CARECOUCH_DEVICE_PASSPHRASE", raising=False)
    runner = CliRunner()
    no_phrase = runner.invoke(main, ["init"], input="")
    assert no_phrase.exit_code == 1
    assert no_phrase.stderr == ("carecouch-device: error: no terminal to ask for the store "
                                "passphrase; set CARECOUCH_DEVICE_PASSPHRASE\n")
    # A script may pipe it instead (once per line: the confirmation too).
    piped = runner.invoke(main, ["init"], input=f"{PASSPHRASE}\n{PASSPHRASE}\n")
    assert piped.exit_code == 0, piped.output
    monkeypatch.setenv("CARECOUCH_DEVICE_PASSPHRASE", PASSPHRASE)
    kept = runner.invoke(main, ["wipe"], input="")
    assert kept.exit_code == 1
    assert kept.stderr.endswith("error: not confirmed; the store was kept (no answer: "
                                "without a terminal, give --yes)\n")
    assert "Aborted" not in kept.output and "Warning" not in kept.output
