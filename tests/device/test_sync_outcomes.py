"""What a person and a script can rely on from ``carecouch-device sync``: exit 1 when a write
was refused or a sync stopped, the JSON naming them; an unreachable server said in one line
within seconds, not a minute of silent retries; progress on stderr, silenced by --quiet."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from carecouch.couch import Database
from tests.helpers.devices import Invoke
from tests.helpers.server import Server

Run = Invoke
RULES = """function (newDoc) {
  if (newDoc.refuse) { throw({forbidden: 'test.refused: not this one'}); }
}"""


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port


def test_a_refused_write_fails_the_sync_and_is_named(run: Run, server: Server,
                                                    member_db: Database) -> None:
    member_db.put({"_id": "_design/rules", "validate_doc_update": RULES})
    assert run("init", "--server", server.url, "--db", member_db.name).exit_code == 0
    good = json.loads(run("--json", "put", stdin=json.dumps(
        {"type": "note", "subject": "patient:1"})).stdout)
    bad = json.loads(run("--json", "put", stdin=json.dumps(
        {"type": "note", "subject": "patient:2", "refuse": True})).stdout)
    synced = run("sync", "--json")
    assert synced.exit_code == 1
    (report,) = json.loads(synced.stdout)
    assert report["state"] == "ok" and report["push"]["docs_written"] == 1
    assert report["refused"] == [{"id": bad["id"], "rev": bad["rev"], "error": "forbidden",
                                  "reason": "test.refused: not this one",
                                  "code": "test.refused"}]
    assert synced.stderr.strip() == ("1 write refused by the server: see `carecouch-device "
                                     "status` for the way out")
    assert member_db.get(good["id"])["_rev"] == good["rev"]
    status = run("status").stdout
    assert f"refused: {bad['id']} {bad['rev']}: test.refused: not this one (way out: " \
           f"carecouch-device discard {bad['id']})" in status
    assert "1 confirmed, 1 refused" in status
    # The refusal stays until a person acts; the next sync says nothing new went wrong.
    assert run("sync").exit_code == 0


def test_an_unreachable_server_is_said_at_once(run: Run, closed_port: int) -> None:
    dbs = [f"caseload_{n}" for n in ("a", "b", "c", "d")]
    made = run("init", "--server", f"http://127.0.0.1:{closed_port}",
               *[arg for db in dbs for arg in ("--db", db)])
    assert made.exit_code == 0, made.output
    started = time.monotonic()
    synced = run("sync", "--json")
    elapsed = time.monotonic() - started
    assert synced.exit_code == 1
    reports = json.loads(synced.stdout)
    assert [r["state"] for r in reports] == ["unreachable"] * 4
    # One database was tried, twice at most; the others on the same server were not.
    assert reports[0]["retries"] <= 1
    assert [r["message"].startswith("not tried") for r in reports] == [False, True, True, True]
    assert synced.stderr.strip().splitlines() == [
        "the server cannot be reached: nothing was synced; everything is kept on this device "
        "and syncs when the network is back"]
    assert elapsed < 20  # was 68.5 s for four databases (8 tries each); measured ~0.5 s


def test_progress_on_long_syncs_and_quiet(run: Run, server: Server, member_db: Database,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from mobile_stub.commands import cmd_sync

    member_db.bulk_docs([{"_id": f"note:{i:04d}", "type": "note"} for i in range(600)])
    assert run("init", "--server", server.url, "--db", member_db.name).exit_code == 0
    monkeypatch.setattr(cmd_sync, "PROGRESS_EVERY", 0.0)  # every batch counts as "long"
    loud = run("sync")
    assert loud.exit_code == 0
    lines = [line for line in loud.stderr.splitlines() if "so far" in line]
    assert lines and all(line.startswith(f"{member_db.name}: pulled ") for line in lines)
    member_db.bulk_docs([{"_id": f"note:x{i:04d}", "type": "note"} for i in range(300)])
    quiet = run("sync", "--quiet")
    assert quiet.exit_code == 0 and quiet.stderr == ""
