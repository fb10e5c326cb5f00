"""``carecouch-device`` with the bridge, end to end: a real bridge on a real port, the real
server behind it, the command line a clinician (or a deployment script) uses.

enrol -> login -> sync with the credentials and filter the bridge hands out; record types the
policy does not grant refused offline; the offline window; leases claimed online and used to
complete a record offline; a revoked device wiping itself; one-line errors.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from carecouch.clock import parse_utc
from carecouch.couch import CouchClient, Database
from carecouch.ids import caseload_db
from tests.helpers.bridges import POLICY, BridgeServer, World
from tests.helpers.devices import Clinician, Invoke, exclusive_record
from tests.helpers.records import care_plan, now, observation

VITALS = ["respiration_rate=18", "spo2=96", "spo2_scale=1", "on_oxygen=false",
          "systolic_bp=128", "pulse=84", "consciousness=A", "temperature=37.2", "news2=0"]


def vitals(*extra: str) -> list[str]:
    return [arg for pair in [*VITALS, *extra] for arg in ("--set", pair)]


def ok(result: Any) -> Any:
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout) if result.stdout.lstrip().startswith(("{", "[")) \
        else result.stdout


def one_line_error(result: Any, code: int = 1) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output + result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    return str(result.stderr)


def enrol_and_login(run: Invoke, who: Clinician) -> dict[str, Any]:
    ok(run("init"))
    ok(run("enrol", "--bridge", who.bridge.url, "--token", who.token(), "--label", "tablet"))
    return dict(ok(run("--json", "login")))


def caseload(admin: CouchClient, world: World, letter: str) -> Database:
    return admin.db(caseload_db(world.caseloads[letter]))


def test_enrol_login_and_sync_with_what_the_bridge_hands_out(
        device_cli: Invoke, clinician: Callable[..., Clinician], admin: CouchClient,
        world: World) -> None:
    ward = caseload(admin, world, "a")
    recent, old = observation("someone", "dev-x"), observation("someone", "dev-x",
                                                                at=now(-60 * 24 * 60))
    plan = care_plan("someone", "dev-x")
    for doc in (recent, old, plan):
        ward.put(doc)
    nurse = clinician()

    login = enrol_and_login(device_cli, nurse)
    device_id = ok(device_cli("--json", "status"))["device_id"]
    assert login["username"] == f"{nurse.user}~{device_id}"
    assert ward.name in login["snapshot"]["databases"]
    assert "observation" in login["snapshot"]["record_types"]

    reports = ok(device_cli("sync", "--json"))
    assert {r["database"]: r["state"] for r in reports}[ward.name] == "ok"
    status = ok(device_cli("status", "--json"))
    (held,) = [db for db in status["databases"] if db["name"] == ward.name]
    assert held["filter"]["name"] == "carecouch/device"
    assert set(held["filter"]["query_params"]) == {"not_before"}  # the 30-day window
    # The filter the bridge handed out: the 60-day-old observation stayed on the server.
    def shown(doc_id: str) -> Any:
        return ok(device_cli("--json", "show", doc_id, "--db", ward.name))["record"]

    assert shown(recent["_id"])["pulse"] == 84
    assert shown(plan["_id"])["title"]
    assert "no document" in one_line_error(device_cli("show", old["_id"], "--db", ward.name))
    bridge = status["bridge"]
    assert bridge["username"] == login["username"] and not bridge["credential_expired"]
    assert bridge["offline_until"] == login["offline_until"]

    made = ok(device_cli("--json", "record", "new", "observation", "--db", ward.name,
                         "--subject", "patient-0042", *vitals("note=seen at home")))
    ok(device_cli("record", "update", plan["_id"], "--db", ward.name,
                  "--set", "title=Leg ulcer, left", "--unset", "goals"))
    reports = ok(device_cli("sync", "--json", "--db", ward.name))
    assert reports[0]["push"]["docs_written"] == 2 and reports[0]["rejected"] == 0

    written = ward.get(made["id"])
    assert (written["author"], written["device"], written["note"]) == (
        nurse.user, device_id, "seen at home")
    assert isinstance(written["clock_offset_ms"], int)
    updated = ward.get(plan["_id"])
    assert updated["title"] == "Leg ulcer, left" and "goals" not in updated
    assert updated["changed"]["title"]["by"] == updated["changed"]["goals"]["by"] == nurse.user
    assert updated["changed"]["title"]["at"] == updated["at"]


def test_a_record_type_the_policy_does_not_grant_is_refused_offline(
        device_cli: Invoke, clinician: Callable[..., Clinician], world: World) -> None:
    enrol_and_login(device_cli, clinician("hca"))  # observations only, on caseload c
    school = caseload_db(world.caseloads["c"])
    ok(device_cli("offline"))
    refused = device_cli("record", "new", "progress_note", "--db", school, "--subject",
                         "patient-007", "--set", "text=settled")
    assert "does not let you write 'progress_note'" in one_line_error(refused)
    ok(device_cli("record", "new", "observation", "--db", school, "--subject", "patient-007",
                  *vitals()))
    status = ok(device_cli("status", "--json"))
    assert [db["pending"] for db in status["databases"] if db["name"] == school] == [1]


def test_no_new_work_after_the_offline_window_until_the_device_logs_in_again(
        device_cli: Invoke, clinician: Callable[..., Clinician],
        make_bridge: Callable[..., BridgeServer], world: World) -> None:
    short = make_bridge(world.policy(POLICY.replace("offline_grace: 2d", "offline_grace: 6s")))
    login = enrol_and_login(device_cli, clinician(on=short))
    ward = caseload_db(world.caseloads["a"])
    ok(device_cli("offline"))
    ok(device_cli("record", "new", "observation", "--db", ward, "--subject", "patient-1",
                  *vitals()))
    # A real wait: carecouch-device reads the wall clock (the session's clock parameter is not
    # the CLI's); tests/device/test_bridge_session.py passes a clock to the same check.
    time.sleep(max(0.0, (parse_utc(login["offline_until"]) - parse_utc(now())).total_seconds())
               + 0.5)

    late = device_cli("record", "new", "observation", "--db", ward, "--subject", "patient-1",
                      *vitals())
    assert "offline window ended" in one_line_error(late)
    assert "PASSED" in ok(device_cli("status"))
    ok(device_cli("online"))
    ok(device_cli("login"))
    ok(device_cli("record", "new", "observation", "--db", ward, "--subject", "patient-1",
                  *vitals()))


def test_a_leased_record_completed_offline_is_accepted_by_the_server(
        device_cli: Invoke, clinician: Callable[..., Clinician], admin: CouchClient,
        world: World, bridge: BridgeServer) -> None:
    ward = caseload(admin, world, "a")
    nurse = clinician()
    enrol_and_login(device_cli, nurse)
    ok(device_cli("sync", "--db", ward.name))
    # Only the bridge creates exclusive records: offline the device says so and makes none.
    ok(device_cli("offline"))
    refused = device_cli("record", "new", "cd_check", "--subject", "patient-0042", "--db",
                         ward.name, "--set", "medication=morphine 10 mg",
                         "--set", "expected_count=12")
    assert "offline" in one_line_error(refused)
    ok(device_cli("online"))
    created = device_cli("record", "new", "cd_check", "--subject", "patient-0042", "--db",
                         ward.name, "--set", "medication=morphine 10 mg",
                         "--set", "expected_count=12")
    record = str(ok(created)).split()[0]
    assert ward.get(record)["status"] == "pending"  # made on the server by the bridge
    assert ok(device_cli("--json", "show", record, "--db", ward.name))["record"][
        "expected_count"] == 12

    leased = ok(device_cli("--json", "lease", "claim", record, "--db", ward.name))
    assert leased["lease"]["holder"] == nurse.user
    ok(device_cli("offline"))
    ok(device_cli("record", "complete", record, "--db", ward.name, "--status", "witnessed",
                  "--set", "counted=12"))
    shown = ok(device_cli("--json", "show", record, "--db", ward.name))["record"]
    assert shown["lease"] == leased["lease"] and shown["completed_by"] == nurse.user
    ok(device_cli("online"))
    (report,) = ok(device_cli("sync", "--json", "--db", ward.name))
    assert report["state"] == "ok" and report["rejected"] == 0, report

    on_server = ward.get(record)
    assert (on_server["status"], on_server["completed_by"], on_server["counted"]) == (
        "witnessed", nurse.user, 12)
    granted = parse_utc(leased["lease"]["granted_at"])
    assert granted <= parse_utc(on_server["completed_at"]) <= parse_utc(
        leased["lease"]["expires_at"])


def test_completing_without_a_lease_is_refused_on_the_device(
        device_cli: Invoke, clinician: Callable[..., Clinician], admin: CouchClient,
        world: World, bridge: BridgeServer) -> None:
    ward = caseload(admin, world, "a")
    records = [exclusive_record(bridge, world) for _ in range(2)]
    colleague = bridge.enrolled_device(world.user("colleague"), [world.group("nurses")])
    taken = colleague.call("POST", "/v1/leases", {"caseload": world.caseloads["a"],
                                                  "record": records[1]})
    assert taken.status_code == 201, taken.text
    enrol_and_login(device_cli, clinician())
    ok(device_cli("sync", "--db", ward.name))

    for record in records:  # never leased; leased to the colleague
        refused = device_cli("record", "complete", record, "--db", ward.name,
                             "--status", "witnessed", "--set", "counted=12")
        assert "you hold no lease" in one_line_error(refused)
    claimed = device_cli("lease", "claim", records[1], "--db", ward.name)
    assert "lease.taken" in one_line_error(claimed)
    ok(device_cli("lease", "claim", records[0], "--db", ward.name))
    ok(device_cli("lease", "release", records[0], "--db", ward.name))
    after = device_cli("record", "complete", records[0], "--db", ward.name,
                       "--status", "witnessed", "--set", "counted=12")
    assert "you hold no lease" in one_line_error(after)
    assert all(ward.get(r)["status"] == "pending" for r in records)


def test_a_revoked_device_wipes_itself_at_its_next_contact_with_the_bridge(
        device_cli: Invoke, clinician: Callable[..., Clinician], world: World,
        tmp_path: Path) -> None:
    nurse = clinician()
    enrol_and_login(device_cli, nurse)
    ward = caseload_db(world.caseloads["a"])
    ok(device_cli("record", "new", "observation", "--db", ward, "--subject", "patient-9",
                  *vitals()))
    ok(device_cli("sync"))
    device_id = ok(device_cli("--json", "status"))["device_id"]
    revoked = nurse.bridge.device(nurse.user).call("DELETE", f"/v1/devices/{device_id}",
                                                   signed=False, token=nurse.token())
    assert revoked.status_code == 200, revoked.text

    stopped = device_cli("sync")  # CouchDB refuses the deleted user; the renewal is refused
    assert "unauthorized" in stopped.stdout
    message = one_line_error(stopped)
    assert "device.revoked" in message and "has wiped its store" in message
    assert not (tmp_path / "cli" / "store.sqlite").exists()
    assert "no device store" in one_line_error(device_cli("status"))


def test_bad_input_gives_one_line_and_the_right_exit_code(
        device_cli: Invoke, clinician: Callable[..., Clinician], world: World) -> None:
    nurse = clinician()
    ok(device_cli("init"))
    assert "not enrolled" in one_line_error(device_cli("login", "--token", nurse.token()))
    one_line_error(device_cli("enrol", "--bridge", nurse.bridge.url), 2)  # no token
    one_line_error(device_cli("enrol", "--bridge", "ftp://x", "--token", "t"), 2)
    unreachable = device_cli("enrol", "--bridge", "http://127.0.0.1:9", "--token", "t")
    assert "cannot reach the bridge" in one_line_error(unreachable)
    bad_token = device_cli("enrol", "--bridge", nurse.bridge.url, "--token", "not-a-jwt")
    assert "auth.bad_token" in one_line_error(bad_token)
    ok(device_cli("enrol", "--bridge", nurse.bridge.url, "--token", nurse.token()))
    assert "already enrolled" in one_line_error(
        device_cli("enrol", "--bridge", nurse.bridge.url, "--token", nurse.token()))
    assert "run `carecouch-device login`" in one_line_error(device_cli("sync"))
    ok(device_cli("login", "--token", nurse.token()))

    ward = caseload_db(world.caseloads["a"])
    one_line_error(device_cli("record", "update", "care_plan:1", "--db", ward), 2)
    one_line_error(device_cli("record", "new", "observation", "--db", ward, "--subject",
                              "p-1", "--set", "pulse"), 2)
    one_line_error(device_cli("record", "new", "observation", "--db", ward, "--subject",
                              "p-1", "--set", "_id=x"), 2)
    assert "no document" in one_line_error(
        device_cli("record", "complete", "cd_check:nope", "--db", ward, "--status", "x"))
    made = ok(device_cli("--json", "record", "new", "observation", "--db", ward, "--subject",
                         "p-1", *vitals()))
    assert "not an exclusive record" in one_line_error(
        device_cli("record", "complete", made["id"], "--db", ward, "--status", "done"))
    assert "lease.no_record" in one_line_error(
        device_cli("lease", "claim", "cd_check:0000000000", "--db", ward))
    assert "holds no database" in one_line_error(
        device_cli("record", "new", "observation", "--db", "caseload_elsewhere",
                   "--subject", "p-1", *vitals()))


def test_break_glass_from_the_device_is_flagged_until_reviewed(
        device_cli: Invoke, bridge: BridgeServer, world: World, admin: CouchClient,
        run_cli: Callable[..., Any]) -> None:
    senior = Clinician(world.user(f"senior{time.monotonic_ns()}"),
                       [world.group("nurses"), world.group("senior")], bridge)
    enrol_and_login(device_cli, senior)
    school = caseload(admin, world, "c")
    assert school.name not in ok(device_cli("--json", "status"))["bridge"]["snapshot"][
        "databases"]
    short = device_cli("break-glass", world.caseloads["c"], "--justification", "urgent")
    assert short.exit_code == 1 and "justification" in short.stderr
    reason = "Collapsed child at the school; need her care plan and allergies now."
    grant = ok(device_cli("--json", "break-glass", world.caseloads["c"],
                          "--justification", reason))
    assert grant["review"] == "pending" and grant["id"].startswith("audit:")
    status = ok(device_cli("--json", "status"))
    assert school.name in status["bridge"]["snapshot"]["databases"]
    text = device_cli("status").stdout
    assert f"BREAK-GLASS access to {world.caseloads['c']} at " in text
    assert "REVIEW PENDING" in text
    synced = device_cli("sync", "--db", school.name)
    assert synced.exit_code == 0, synced.output
    assert "REVIEW PENDING" in device_cli("status").stdout  # syncing is not a review

    listed = json.loads(run_cli("audit", "break-glass", "--pending", "--json").stdout)
    assert grant["id"] in [g["id"] for g in listed]
    reviewed = run_cli("audit", "review", grant["id"], "--outcome", "justified",
                       "--note", "checked with the school nurse")
    assert reviewed.exit_code == 0, reviewed.output
    assert grant["id"] not in [g["id"] for g in json.loads(
        run_cli("audit", "break-glass", "--pending", "--json").stdout)]
    ok(device_cli("sync", "--db", school.name))
    text = device_cli("status").stdout
    assert "REVIEW PENDING" not in text and "reviewed, justified" in text
    unknown = run_cli("audit", "review", "audit:nope", "--outcome", "justified", "--note", "x")
    assert unknown.exit_code == 1 and "no break-glass grant" in unknown.stderr


def test_roles_hold_per_caseload_on_the_device_offline(
        device_cli: Invoke, bridge: BridgeServer, world: World, admin: CouchClient) -> None:
    # "dual" is a ward nurse (caseloads a, b) who works bank shifts as an HCA on c.
    dual = Clinician(world.user("dual"), [world.group("nurses")], bridge)
    login = enrol_and_login(device_cli, dual)
    ward, school = caseload(admin, world, "a"), caseload(admin, world, "c")
    caseloads = login["snapshot"]["caseloads"]
    assert caseloads[ward.name]["clinical_roles"] == ["nurse"]
    assert caseloads[school.name]["clinical_roles"] == ["hca"]
    ok(device_cli("offline"))
    given = ["--set", "medication=paracetamol", "--set", "dose=1", "--set", "unit=g",
             "--set", "route=oral", "--set", f"administered_at={now()}"]
    refused = one_line_error(device_cli("record", "new", "administration", "--subject",
                                        "patient-7", "--db", school.name, *given))
    assert "may write there" in refused and "administration" in refused
    ok(device_cli("record", "new", "administration", "--subject", "patient-7",
                  "--db", ward.name, *given))
    ok(device_cli("online"))
    (report,) = [r for r in ok(device_cli("sync", "--json")) if r["database"] == ward.name]
    assert report["push"]["docs_written"] == 1 and report["rejected"] == 0
