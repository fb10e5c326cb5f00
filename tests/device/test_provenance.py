"""Provenance: an enrolled device signs every revision it writes; ``carecouch audit verify``
proves which device wrote each one, and flags what no enrolled device (or the bridge)
signed; ``carecouch conflicts show`` marks each branch (carecouch/provenance.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from carecouch import revocation
from carecouch.clock import utc_now
from carecouch.couch import CouchClient, Doc
from carecouch.ids import caseload_db
from mobile_stub.session import BridgeSession
from tests.helpers.bridges import BridgeServer, World
from tests.helpers.devices import Clinician, exclusive_record
from tests.helpers.records import observation, push


def verify(run_cli: Callable[..., Any], caseload: str, since: str) -> tuple[int, dict[str, Any]]:
    result = run_cli("audit", "verify", "--caseload", caseload, "--since", since, "--json")
    return result.exit_code, json.loads(result.stdout)


def flagged(report: dict[str, Any]) -> dict[str, str]:
    return {f["doc"]: f["provenance"] for f in report["flagged"]}


def test_what_a_device_signed_verifies_and_anything_else_is_flagged(
        enrolled: Callable[..., BridgeSession], clinician: Callable[..., Clinician],
        world: World, admin: CouchClient, server: Any, run_cli: Callable[..., Any]) -> None:
    since = utc_now()
    time.sleep(0.01)  # what follows is stamped (by real clocks) strictly after `since`
    session = enrolled(clinician())
    device, db_name = session.device(), caseload_db(world.caseloads["a"])
    obs = device.new_record(db_name, "observation", {
        "subject": "patient-0042", "respiration_rate": 18, "spo2": 96, "spo2_scale": 1,
        "on_oxygen": False, "systolic_bp": 128, "pulse": 84, "consciousness": "A",
        "temperature": 37.2})
    plan = device.new_record(db_name, "care_plan", {"subject": "patient-0042",
                                                     "title": "Leg ulcer"})
    assert device.sync(db_name).ok
    code, report = verify(run_cli, world.caseloads["a"], since)
    assert (code, report["flagged"]) == (0, []), report
    assert report["counts"] == {"verified": 2}
    server_obs = admin.db(db_name).get(obs["_id"])
    assert server_obs["signature"]["signer"] == session.enrolment.device_id

    # Three other means of writing a record that names this device: an admin; the
    # clinician's CouchDB password copied off the device; a signed record edited afterwards.
    device_id = session.enrolment.device_id
    name = session.describe()["username"]
    clinician_user = name.split("~")[0]
    forged = {**observation(clinician_user, device_id, pulse=40, news2=3)}
    admin.db(db_name).put(forged)
    creds = session.current()
    with CouchClient(server.url, creds.username, creds.password) as copied:
        stolen = observation(clinician_user, device_id, respiration_rate=30, news2=3)
        push(copied.db(db_name), stolen)
        # ...and a sibling on the genuine observation (its owner's account): a conflict.
        held = admin.db(db_name).get(obs["_id"], revs=True)
        sibling = {k: v for k, v in held.items() if k not in ("_rev", "_revisions",
                                                                "signature")}
        sibling_rev = push(copied.db(db_name), {**sibling, "note": "added later"}, None)
    edited = {**admin.db(db_name).get(plan["_id"]), "title": "Leg ulcer (healed)"}
    edited["changed"] = {**edited["changed"], "title": {"by": clinician_user, "at": utc_now()}}
    admin.db(db_name).put(edited)  # keeps the old signature over new content

    code, report = verify(run_cli, world.caseloads["a"], since)
    assert code == 1
    assert flagged(report) == {forged["_id"]: "unsigned", stolen["_id"]: "unsigned",
                               obs["_id"]: "unsigned", plan["_id"]: "bad_signature"}
    (sib,) = [f for f in report["flagged"] if f["doc"] == obs["_id"]]
    assert sib["rev"] == sibling_rev
    text = run_cli("audit", "verify", "--caseload", world.caseloads["a"], "--since", since)
    assert text.exit_code == 1 and "4 revisions not provably from the device" in text.stderr

    # Conflict review shows at once which branch no enrolled device signed.
    shown = json.loads(run_cli("conflicts", "show", obs["_id"], "--caseload",
                               world.caseloads["a"], "--json").stdout)
    marks = {p["rev"]: p["verified"] for p in shown["provenance"]}
    assert marks == {obs["_rev"]: True, sibling_rev: False}
    out = run_cli("conflicts", "show", obs["_id"], "--caseload", world.caseloads["a"]).stdout
    assert f"provenance of {sibling_rev[:14]}: NOT VERIFIED (unsigned" in out
    assert f"signed by device {device_id}" in out

    # A revoked device's key still verifies what it signed before.
    revocation.revoke_device(admin, device_id, "it")
    code, report = verify(run_cli, world.caseloads["a"], since)
    assert obs["_id"] in {f["doc"] for f in report["flagged"]}  # (the sibling)
    assert report["counts"]["verified"] == 1  # the genuine observation's revision


def test_exclusive_records_the_bridge_writes_are_signed_by_the_bridge(
        bridge: BridgeServer, world: World, admin: CouchClient,
        run_cli: Callable[..., Any]) -> None:
    since = utc_now()
    time.sleep(0.01)  # what follows is stamped (by real clocks) strictly after `since`
    record = exclusive_record(bridge, world)
    doc: Doc = admin.db(caseload_db(world.caseloads["a"])).get(record)
    assert doc["signature"]["signer"] == "bridge"
    code, report = verify(run_cli, world.caseloads["a"], since)
    assert code == 0 and report["counts"] == {"verified": 1}, report
