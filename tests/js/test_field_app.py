"""The field web app (clients/js/app/) in Debian's Chromium, headless, driven by playwright-core
(clients/js/test/browser/app_browser.js), served by app/serve.js in front of this session's real
server and bridge. One tablet's day, in order: it signs in and syncs; opens again with no
network (service worker) and records offline — an observation, a care plan change, a leased
controlled-drug check; IndexedDB and Cache Storage are read to show nothing of a patient is in
the clear; it comes back online and the server holds exactly those records, once; it and the
reference device edit one care plan and converge, and the conflict is in `carecouch conflicts
list`; revoked, it wipes itself. The screenshot stays in the test's tmp dir for a person."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from admin_cli.context import AppContext
from admin_cli.main import cli as carecouch_cli
from carecouch.couch import CouchClient
from carecouch.ids import caseload_db
from mobile_stub import enrolment
from mobile_stub.crypto import KdfParams
from mobile_stub.session import BridgeSession
from mobile_stub.store import DeviceStore
from tests.helpers.bridges import BridgeServer, World
from tests.helpers.devices import FAST_KDF, PASSPHRASE, exclusive_record
from tests.helpers.server import Server

from .support import CLIENT, npm_ci_done

CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = CLIENT / "test" / "browser" / "app_browser.js"
APP_PASSPHRASE = "tablet under the bed"
NOTE = "patient mentions wound pain at night"   # a marker: must never be in IndexedDB
TITLE = "Venous leg ulcer, left"                # the care plan's title, likewise
VITALS = {"respiration_rate": 22, "spo2": 95, "systolic_bp": 108, "pulse": 96,
          "temperature": 38.0, "consciousness": "A", "note": NOTE}


@pytest.fixture(scope="module")
def app_url(server: Server, bridge: BridgeServer) -> Iterator[str]:
    npm_ci_done()
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: run ./dev install", pytrace=False)
    built = subprocess.run(["npm", "run", "--silent", "build"], cwd=CLIENT, capture_output=True,
                           text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    proc = subprocess.Popen(["node", "app/serve.js", "--port", "0", "--couch", server.url,
                             "--bridge", bridge.url], cwd=CLIENT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        why = proc.stderr.read() if proc.stderr else ""
        pytest.fail(f"app/serve.js did not start: {line}{why}")
    try:
        yield line.split()[-1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()


@dataclass
class Tablet:
    url: str
    profile: Path
    runs: list[dict[str, Any]] = field(default_factory=list)

    def run(self, *steps: dict[str, Any]) -> list[dict[str, Any]]:
        done = subprocess.run(["node", str(SCRIPT), json.dumps({
            "url": self.url, "profile": str(self.profile), "steps": list(steps)})],
            capture_output=True, text=True, timeout=180, cwd=CLIENT)
        try:
            out = json.loads(done.stdout)
        except ValueError:
            pytest.fail(f"the browser script failed: {done.stdout[-2000:]}{done.stderr[-3000:]}")
        assert out["failure"] is None, f"{out['failure']} after {out['results']}"
        assert out["errors"] == [], out["errors"]
        self.runs.append(out)
        results: list[dict[str, Any]] = out["results"]
        return results


@dataclass
class Day:
    """What the tablet's day left behind, for the tests to look at."""

    tablet: Tablet
    device: str
    db: str
    caseload: str
    user: str
    token: str
    plan: str
    check: str
    observation: str
    offline: list[dict[str, Any]]
    storage: dict[str, Any]
    docs: dict[str, dict[str, Any]]
    screenshot: Path
    reference: BridgeSession


def _reference(bridge: BridgeServer, world: World, tmp: Path) -> BridgeSession:
    """The reference device (mobile_stub) of a colleague on the same caseloads."""
    store = DeviceStore.create(tmp / "reference" / "store.sqlite", PASSPHRASE,
                               kdf=KdfParams.new(**FAST_KDF))
    user = world.user(f"refnurse{uuid.uuid4().hex[:6]}")
    enrolment.enrol(store, bridge.url, bridge.idp.token(user, [world.group("nurses")],
                                                        lifetime=3600))
    session = BridgeSession(store)
    session.login()
    return session


@pytest.fixture(scope="module")
def day(app_url: str, bridge: BridgeServer, world: World, admin: CouchClient,
        tmp_path_factory: pytest.TempPathFactory) -> Day:
    tmp = tmp_path_factory.mktemp("field-app")
    db = caseload_db(world.caseloads["a"])
    subject = f"patient-{uuid.uuid4().hex[:6]}"
    # What the day starts with on the server: a care plan the reference device wrote, and a
    # controlled-drug check the bridge created.
    reference = _reference(bridge, world, tmp)
    ref = reference.device()
    plan = ref.new_record(db, "care_plan", {"subject": subject, "title": "Leg ulcer",
                                            "goals": ["dress twice weekly"]})
    assert not ref.sync(db).refused
    check = exclusive_record(bridge, world, "a", medication="oxycodone 5 mg", expected_count=20)
    user = world.user(f"appnurse{uuid.uuid4().hex[:6]}")
    token = bridge.idp.token(user, [world.group("nurses")], lifetime=3600)
    tablet = Tablet(app_url, tmp / "profile")
    shot = tmp / "field-app.png"

    first = tablet.run({"op": "open"},
                       {"op": "setup", "token": token, "passphrase": APP_PASSPHRASE},
                       {"op": "patients", "expect": [subject, "patient-0042"]},
                       {"op": "sw_ready"},
                       {"op": "claim", "subject": "patient-0042", "id": check})
    device = first[1]["device"]
    offline = tablet.run(
        {"op": "open"}, {"op": "offline"},
        {"op": "reload"},                                   # the app opens with no network
        {"op": "unlock", "passphrase": APP_PASSPHRASE},
        {"op": "patients", "expect": [subject]},
        {"op": "observe", "subject": subject, "vitals": VITALS},
        {"op": "plan", "subject": subject, "title": TITLE, "goals": ["dress twice weekly",
                                                                     "compression"]},
        {"op": "complete", "subject": "patient-0042", "id": check, "counted": 20},
        {"op": "screenshot", "path": str(shot), "subject": subject},
        {"op": "storage"},
        {"op": "text"})
    observation = offline[5]["id"]
    fresh = bridge.idp.token(user, [world.group("nurses")], lifetime=3600)
    back = tablet.run(
        {"op": "open"}, {"op": "unlock", "passphrase": APP_PASSPHRASE},
        {"op": "signin", "token": fresh},                # a new identity token, as after expiry
        {"op": "wait_badge", "subject": subject, "selector":
         f'#observations li[data-id="{observation}"] .badge', "text": "confirmed"},
        {"op": "wait_badge", "subject": subject, "selector": "#plan-state .badge",
         "text": "confirmed"},
        {"op": "wait_badge", "subject": "patient-0042", "selector":
         f'#checks li[data-id="{check}"] .badge', "text": "confirmed"},
        {"op": "doc", "db": db, "id": observation}, {"op": "doc", "db": db, "id": plan["_id"]},
        {"op": "doc", "db": db, "id": check})
    docs = {r["doc"]["_id"]: r["doc"] for r in back if r["op"] == "doc"}
    assert back[2]["message"].startswith("Signed in"), back[2]
    return Day(tablet, device, db, world.caseloads["a"], user, token, plan["_id"], check,
               observation, offline, offline[9], docs, shot, reference)


def _meta_free(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in ("_rev", "_revisions", "_conflicts")}


def test_the_app_opens_offline_and_says_so(day: Day) -> None:
    steps = {r["op"]: r for r in day.offline}
    assert steps["reload"]["visible"] == "unlock"  # from the service worker's cache
    assert "You are offline" in steps["offline"]["net"]
    assert "You are offline" in steps["text"]["net"]
    assert "NEWS2 5" in day.offline[5]["preview"]     # the chart's threshold for urgent response
    assert "sent when you reconnect" in day.offline[5]["message"]
    assert day.screenshot.stat().st_size > 20_000
    print(f"field app screenshot: {day.screenshot}")


def test_offline_records_reach_the_server_exactly_and_once(day: Day, admin: CouchClient
                                                           ) -> None:
    db = admin.db(day.db)
    for doc_id, on_device in day.docs.items():
        on_server = db.get(doc_id)
        assert on_server["_rev"] == on_device["_rev"]
        assert _meta_free(on_server) == _meta_free(on_device)
    obs = db.get(day.observation)
    assert (obs["note"], obs["news2"], obs["device"]) == (NOTE, 5, day.device)
    assert obs["signature"]["signer"] == day.device
    assert db.get(day.plan)["title"] == TITLE
    assert db.get(day.check)["status"] == "witnessed" and db.get(day.check)["counted"] == 20
    username = f"{day.user}~{day.device}"
    mine = db.all_docs(startkey=f"observation:{username}:",
                       endkey=f"observation:{username}:\ufff0")["rows"]
    assert [row["id"] for row in mine] == [day.observation]   # nothing duplicated


def test_nothing_of_a_patient_is_in_indexeddb_or_cache_storage(day: Day) -> None:
    storage = day.storage
    assert any(name.startswith("_pouch_cc-carecouch-db-") for name in storage["databases"])
    text = storage["text"]
    assert '"sealed"' in text                          # the records are there, sealed
    for marker in (NOTE, TITLE, "oxycodone", "dress twice weekly", '"news2"', '"pulse"',
                   day.token, APP_PASSPHRASE):
        assert marker not in text, marker
    # Cache Storage: the app's own files, nothing else.
    assert storage["caches"] and all("/couch/" not in url and "/bridge/" not in url
                                      for url in storage["caches"])
    for marker in (NOTE, TITLE, "oxycodone", day.token):
        assert marker not in storage["cacheText"], marker


def test_the_reference_device_converges_and_the_conflict_is_listed(day: Day, server: Server
                                                                   ) -> None:
    ref = day.reference.device()
    assert not ref.sync(day.db).refused
    assert _meta_free(ref.store.database(day.db).get(day.observation)) == \
        _meta_free(day.docs[day.observation])
    # Both edit the care plan with no network; then both sync.
    ref.store.set_offline(True)
    ref.update(day.db, day.plan, {"goals": ["dress daily"]})
    day.tablet.run({"op": "open"}, {"op": "offline"},
                   {"op": "unlock", "passphrase": APP_PASSPHRASE},
                   {"op": "plan", "subject": day.docs[day.plan]["subject"], "title": TITLE,
                    "goals": ["elevate the leg"]})
    ref.store.set_offline(False)
    assert not ref.sync(day.db).refused
    results = day.tablet.run({"op": "open"}, {"op": "unlock", "passphrase": APP_PASSPHRASE},
                             {"op": "sync"}, {"op": "sync"},
                             {"op": "doc", "db": day.db, "id": day.plan})
    assert not ref.sync(day.db).refused
    browser = results[-1]["doc"]
    held = ref.store.database(day.db).get(day.plan)
    assert browser["_rev"] == held["_rev"] and len(browser["_conflicts"]) == 1
    listed = _carecouch(server, "conflicts", "list", "--caseload", day.caseload, "--json")
    assert day.plan in listed, listed


def _carecouch(server: Server, *args: str) -> str:
    import os

    saved = dict(os.environ)
    os.environ.update(COUCHDB_URL=server.url, COUCHDB_USER=server.user,
                      COUCHDB_PASSWORD=server.password)
    app = AppContext()
    try:
        result = CliRunner().invoke(carecouch_cli, list(args), obj=app, catch_exceptions=False)
    finally:
        app.close()
        os.environ.clear()
        os.environ.update(saved)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_revoked_tablet_wipes_itself(day: Day, bridge: BridgeServer) -> None:
    revoked = httpx.delete(f"{bridge.url}/v1/devices/{day.device}",
                           headers={"Authorization": f"Bearer {day.token}"})
    assert revoked.status_code == 200, revoked.text
    results = day.tablet.run({"op": "open"},
                             {"op": "unlock", "passphrase": APP_PASSPHRASE, "expect": "wiped"},
                             {"op": "storage"}, {"op": "reload"})
    storage = results[2]
    assert [n for n in storage["databases"] if n.startswith("_pouch_cc-")] == []
    assert NOTE not in storage["text"] and '"sealed"' not in storage["text"]
    assert results[3]["visible"] == "setup"   # nothing left to unlock

