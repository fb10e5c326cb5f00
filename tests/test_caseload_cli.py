"""``carecouch caseload`` end to end: the CLI against the real test server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from admin_cli.context import AppContext
from carecouch.audit import AUDIT_DB
from carecouch.couch import CouchClient
from carecouch.ddocs import MAIN_DDOC_ID, assemble, stamped_version
from carecouch.errors import CouchError
from carecouch.ids import caseload_db, member_role
from carecouch.registry import REGISTRY_DB
from carecouch.security import admin_only, caseload_security
from tests.helpers.caseloads import audit_entries, registry_record
from tests.helpers.fixtures import User
from tests.helpers.server import Server

Run = Callable[..., Result]
IdFactory = Callable[[], str]


def one_error_line(result: Result, exit_code: int) -> str:
    assert result.exit_code == exit_code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def state(admin: CouchClient, ids: list[str]) -> dict[str, object]:
    """Everything a provisioning write could change, for before/after comparisons."""
    return {caseload_id: {
        "record": (registry_record(admin, caseload_id) or {}).get("_rev"),
        "ddoc": (admin.db(caseload_db(caseload_id)).get_or_none(MAIN_DDOC_ID) or {}).get("_rev"),
        "security": admin.db(caseload_db(caseload_id)).security_or_none(),
        "audit": len(audit_entries(admin, caseload_id)),
    } for caseload_id in ids}


def write_yaml(path: Path, entries: list[dict[str, str]]) -> Path:
    lines = ["caseloads:"]
    for entry in entries:
        lines.append(f"  - id: {entry['id']}")
        lines += [f"    {k}: {v}" for k, v in entry.items() if k != "id"]
    path.write_text("\n".join(lines) + "\n")
    return path


# -- create -------------------------------------------------------------------------------

def test_create_provisions_everything(run_cli: Run, admin: CouchClient, server: Server,
                                      caseload_ids: IdFactory) -> None:
    caseload_id = caseload_ids()
    result = run_cli("caseload", "create", caseload_id, "--name", "North District 2",
                     "--team", "district-nursing")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == f"created caseload {caseload_id} ({caseload_db(caseload_id)})\n"

    db = admin.db(caseload_db(caseload_id))
    assert db.get_security() == caseload_security(caseload_id)
    assert db.get_security()["members"]["roles"] == [f"caseload:{caseload_id}",
                                                     "carecouch:bridge"]
    ddoc = db.get(MAIN_DDOC_ID)
    expected = assemble()[MAIN_DDOC_ID]
    assert ddoc["carecouch"]["version"] == stamped_version(expected)
    assert ddoc["views"]["conflicts"] == expected["views"]["conflicts"]

    record = registry_record(admin, caseload_id)
    assert record is not None
    assert {k: record[k] for k in ("type", "id", "name", "team", "db", "status",
                                   "design_docs")} == {
        "type": "caseload", "id": caseload_id, "name": "North District 2",
        "team": "district-nursing", "db": caseload_db(caseload_id), "status": "active",
        "design_docs": {MAIN_DDOC_ID: stamped_version(expected)}}
    assert record["created_at"] == record["updated_at"]
    assert record["created_at"].endswith("Z")

    [entry] = audit_entries(admin, caseload_id)
    assert entry["_id"].startswith(f"audit:{entry['at']}:")
    assert {k: entry[k] for k in ("type", "action", "actor", "subject")} == {
        "type": "audit", "action": "caseload.create", "actor": server.user,
        "subject": caseload_id}
    assert entry["details"]["name"] == "North District 2"
    for system_db in (REGISTRY_DB, AUDIT_DB):
        assert admin.db(system_db).get_security() == admin_only()


@pytest.mark.parametrize("bad", ["North District", "north_1", "-north", "a" * 49, ""])
def test_bad_id_is_bad_usage(run_cli: Run, admin: CouchClient, bad: str) -> None:
    result = run_cli("caseload", "create", "--", bad)  # "--": "-north" is not an option
    line = one_error_line(result, 2)
    assert line.startswith(f"error: bad caseload id {bad!r}: ")
    assert line.endswith("use 1-48 lowercase letters, digits and '-', starting and ending "
                         "with a letter or digit")
    assert not admin.db(caseload_db(bad)).exists() if bad else True


def test_bad_id_is_refused_before_settings_are_read(run_cli: Run) -> None:
    del os.environ["COUCHDB_PASSWORD"]
    for command in ("create", "show", "archive", "unarchive", "destroy"):
        line = one_error_line(run_cli("caseload", command, "North"), 2)
        assert line.startswith("error: bad caseload id 'North': character 'N' not allowed")


def test_duplicate_create_fails_and_writes_nothing(run_cli: Run, admin: CouchClient,
                                                   caseload_ids: IdFactory) -> None:
    caseload_id = caseload_ids()
    assert run_cli("caseload", "create", caseload_id).exit_code == 0
    before = state(admin, [caseload_id])
    line = one_error_line(run_cli("caseload", "create", caseload_id, "--name", "Other"), 1)
    assert line == (f"error: caseload {caseload_id} already exists (use `carecouch caseload "
                    "apply` to change it)")
    assert state(admin, [caseload_id]) == before


# -- apply --------------------------------------------------------------------------------

def test_apply_yaml_then_rerun_writes_nothing(run_cli: Run, admin: CouchClient,
                                              caseload_ids: IdFactory, tmp_path: Path) -> None:
    ids = [caseload_ids() for _ in range(3)]
    manifest = write_yaml(tmp_path / "caseloads.yaml", [
        {"id": ids[0], "name": "North District Nursing", "team": "district-nursing"},
        {"id": ids[1], "name": "Mobile Clinic"},
        {"id": ids[2]}])
    result = run_cli("caseload", "apply", str(manifest))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "3 caseloads: 3 created, 0 unchanged"
    assert "provisioning" in result.stderr  # the progress bar (stderr, not stdout)
    assert (registry_record(admin, ids[0]) or {})["team"] == "district-nursing"
    assert (registry_record(admin, ids[1]) or {})["team"] is None
    assert (registry_record(admin, ids[2]) or {})["name"] == ids[2]

    before = state(admin, ids)
    app = AppContext()
    result = run_cli("caseload", "apply", str(manifest), "--quiet", obj=app)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "3 caseloads: 3 unchanged - nothing to write\n"
    assert result.stderr == ""  # --quiet: no progress bar
    assert state(admin, ids) == before
    assert set(app.client.request_counts) <= {"GET", "HEAD"}  # not one request that writes


def test_apply_csv(run_cli: Run, admin: CouchClient, caseload_ids: IdFactory,
                   tmp_path: Path) -> None:
    ids = [caseload_ids() for _ in range(2)]
    manifest = tmp_path / "caseloads.csv"
    manifest.write_text(f"id,name,team\n{ids[0]},\"East CMHT, adults\",cmht\n{ids[1]},,\n")
    result = run_cli("caseload", "apply", str(manifest), "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert [c["actions"] for c in report["caseloads"]] == [["create"], ["create"]]
    assert report["summary"] == {"create": 2, "unchanged": 0}
    assert (registry_record(admin, ids[0]) or {})["name"] == "East CMHT, adults"
    assert admin.db(caseload_db(ids[1])).get_security() == caseload_security(ids[1])


def test_dry_run_prints_the_plan_and_writes_nothing(run_cli: Run, admin: CouchClient,
                                                    caseload_ids: IdFactory,
                                                    tmp_path: Path) -> None:
    existing, new = caseload_ids(), caseload_ids()
    assert run_cli("caseload", "create", existing, "--name", "Old name").exit_code == 0
    manifest = write_yaml(tmp_path / "m.yaml", [{"id": existing, "name": "New name"},
                                                {"id": new}])
    before = state(admin, [existing, new])
    app = AppContext()
    result = run_cli("caseload", "apply", str(manifest), "--dry-run", obj=app)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "ID             PLAN              NOTE",
        f"{existing}  update name/team  -",
        f"{new}  create            -",
        "2 caseloads (dry run): 1 create, 1 update name/team, 0 unchanged"]
    assert "dry run: nothing was written" in result.stderr
    assert state(admin, [existing, new]) == before
    assert not admin.db(caseload_db(new)).exists()
    assert set(app.client.request_counts) <= {"GET", "HEAD"}


def test_changed_design_doc_is_upgraded_in_place(run_cli: Run, admin: CouchClient,
                                                 caseload_ids: IdFactory, couch_dir: Path,
                                                 tmp_path: Path) -> None:
    ids = [caseload_ids() for _ in range(2)]
    manifest = write_yaml(tmp_path / "m.yaml", [{"id": i} for i in ids])
    os.environ["CARECOUCH_COUCH_DIR"] = str(couch_dir)
    assert run_cli("caseload", "apply", str(manifest)).exit_code == 0
    db = admin.db(caseload_db(ids[0]))
    old = db.get(MAIN_DDOC_ID)

    view = couch_dir / "design_docs" / "carecouch" / "views" / "by_type"
    view.mkdir()
    (view / "map.js").write_text("function (doc) {\n  emit(doc.type || null, null);\n}\n")
    new_version = stamped_version(assemble(couch_dir)[MAIN_DDOC_ID])
    listed = json.loads(run_cli("caseload", "list", "--json").stdout)
    mine = {row["id"]: row for row in listed if row["id"] in ids}
    assert [mine[i]["design_current"] for i in ids] == [False, False]

    result = run_cli("caseload", "apply", str(manifest))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "2 caseloads: 2 upgraded, 0 unchanged"
    new = db.get(MAIN_DDOC_ID)
    assert new["_rev"].split("-")[0] == str(int(old["_rev"].split("-")[0]) + 1)  # in place
    assert new["carecouch"]["version"] == new_version
    assert "by_type" in new["views"]
    record = registry_record(admin, ids[0])
    assert record is not None and record["design_docs"] == {MAIN_DDOC_ID: new_version}
    upgrade = [e for e in audit_entries(admin, ids[0]) if e["action"] == "caseload.upgrade"]
    assert len(upgrade) == 1
    assert upgrade[0]["details"]["from"] == {MAIN_DDOC_ID: old["carecouch"]["version"]}
    assert upgrade[0]["details"]["to"] == {MAIN_DDOC_ID: new_version}
    # And once upgraded, nothing more to do.
    assert run_cli("caseload", "apply", str(manifest)).stdout.endswith("nothing to write\n")


def test_changed_name_team_and_drifted_security_are_corrected(
        run_cli: Run, admin: CouchClient, caseload_ids: IdFactory, tmp_path: Path) -> None:
    caseload_id = caseload_ids()
    assert run_cli("caseload", "create", caseload_id, "--name", "A", "--team", "t1").exit_code == 0
    db = admin.db(caseload_db(caseload_id))
    db.put_security({**caseload_security(caseload_id), "members": {
        "roles": [member_role(caseload_id)], "names": ["someone"]}})
    manifest = write_yaml(tmp_path / "m.yaml", [{"id": caseload_id, "name": "B", "team": "t2"}])
    result = run_cli("caseload", "apply", str(manifest), "--json")
    assert json.loads(result.stdout)["caseloads"][0]["actions"] == ["security", "update"]
    assert db.get_security() == caseload_security(caseload_id)
    record = registry_record(admin, caseload_id)
    assert record is not None and (record["name"], record["team"]) == ("B", "t2")
    actions = [e["action"] for e in audit_entries(admin, caseload_id)]
    assert actions == ["caseload.create", "caseload.security", "caseload.update"]


@pytest.mark.parametrize(("name", "text", "message"), [
    ("caseloads.csv", "id,name\nok-1,A\nok-2,B\nNorth District,C\n",
     "error: caseloads.csv:4: bad caseload id 'North District': characters ' ', 'D', 'N' not "
     "allowed; use 1-48"),
    ("caseloads.yaml", "caseloads:\n  - id: ok-1\n  - id: ok-2\n    team: [x]\n",
     "error: caseloads.yaml:4: expected a single value"),
    ("caseloads.yaml", "caseloads:\n  - id: ok-1\n  - id: North District\n",
     "error: caseloads.yaml:3: bad caseload id 'North District'"),
    ("caseloads.txt", "ok-1\n", "error: caseloads.txt: a manifest is a .yaml, .yml or .csv"),
])
def test_bad_manifest_line_fails_before_any_write(run_cli: Run, admin: CouchClient,
                                                  tmp_path: Path, name: str, text: str,
                                                  message: str) -> None:
    os.chdir(tmp_path)  # the message names the file as it was given
    Path(name).write_text(text)
    line = one_error_line(run_cli("caseload", "apply", name), 1)
    assert line.startswith(message)
    assert not admin.db(caseload_db("ok-1")).exists()


def test_missing_manifest(run_cli: Run, tmp_path: Path) -> None:
    line = one_error_line(run_cli("caseload", "apply", str(tmp_path / "nope.yaml")), 1)
    assert line == f"error: No such file or directory: {tmp_path / 'nope.yaml'}"


# -- list / show --------------------------------------------------------------------------

def test_list_and_show(run_cli: Run, admin: CouchClient, caseload_ids: IdFactory,
                       views_couch_dir: Path) -> None:
    caseload_id = caseload_ids()
    os.environ["CARECOUCH_COUCH_DIR"] = str(views_couch_dir)
    run_cli("caseload", "create", caseload_id, "--name", "Mobile Clinic", "--team", "mobile")
    db = admin.db(caseload_db(caseload_id))
    db.bulk_docs([{"_id": "observation:1", "type": "observation", "_rev": "1-aaa"},
                  {"_id": "observation:1", "type": "observation", "_rev": "1-bbb"},
                  {"_id": "observation:2", "type": "observation", "_rev": "1-aaa"}],
                 new_edits=False)
    version = stamped_version(assemble(views_couch_dir)[MAIN_DDOC_ID])
    assert version is not None

    rows = json.loads(run_cli("caseload", "list", "--json", "--quiet").stdout)
    [row] = [r for r in rows if r["id"] == caseload_id]
    assert {k: row[k] for k in ("name", "team", "status", "db", "doc_count", "conflicted_docs",
                                "design_version", "design_current", "security_ok")} == {
        "name": "Mobile Clinic", "team": "mobile", "status": "active",
        "db": caseload_db(caseload_id), "doc_count": 3, "conflicted_docs": 1,
        "design_version": version[:8], "design_current": True, "security_ok": True}
    assert row["size"] > 0

    table = run_cli("caseload", "list", "--status", "active").stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "TEAM", "STATUS", "DOCS", "SIZE", "CONFLICTED",
                                "DESIGN"]
    [line] = [t for t in table if t.startswith(caseload_id)]
    assert line.split()[-2:] == [version[:8], "current"]
    assert " 1 " in line  # the conflicted-document count
    archived_only = run_cli("caseload", "list", "--status", "archived", "--json").stdout
    assert caseload_id not in archived_only

    shown = json.loads(run_cli("caseload", "show", caseload_id, "--json").stdout)
    assert shown["security"] == caseload_security(caseload_id)
    assert shown["design_docs"] == {MAIN_DDOC_ID: {"version": version, "current": True}}
    text = run_cli("caseload", "show", caseload_id).stdout
    assert f"member roles              caseload:{caseload_id}, carecouch:bridge\n" in text
    assert f"design {MAIN_DDOC_ID}  {version[:8]} current\n" in text


def test_show_unknown_caseload(run_cli: Run, caseload_ids: IdFactory) -> None:
    caseload_id = caseload_ids()
    line = one_error_line(run_cli("caseload", "show", caseload_id), 1)
    assert line == f"error: caseload {caseload_id} does not exist"


# -- archive / unarchive ------------------------------------------------------------------

def test_archive_removes_member_access_and_keeps_data(
        run_cli: Run, admin: CouchClient, caseload_ids: IdFactory, views_couch_dir: Path,
        make_user: Callable[..., User]) -> None:
    caseload_id = caseload_ids()
    os.environ["CARECOUCH_COUCH_DIR"] = str(views_couch_dir)
    assert run_cli("caseload", "create", caseload_id).exit_code == 0
    member = make_user(roles=[member_role(caseload_id)])
    db = admin.db(caseload_db(caseload_id))
    db.put({"_id": "observation:1", "type": "observation"})
    assert member.client.db(db.name).get("observation:1")["type"] == "observation"

    result = run_cli("caseload", "archive", caseload_id)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (f"archived caseload {caseload_id}: members have no access, the "
                             "data is kept\n")
    with pytest.raises(CouchError) as info:
        member.client.db(db.name).get("observation:1")
    assert info.value.status == 403  # authenticated, not a member: CouchDB's 403 forbidden
    assert db.get_security()["members"] == {"roles": ["_admin"]}
    assert db.get("observation:1")["type"] == "observation"  # the data is kept
    assert (registry_record(admin, caseload_id) or {})["status"] == "archived"
    assert run_cli("caseload", "archive", caseload_id).stdout == (
        f"caseload {caseload_id} was already archived\n")

    result = run_cli("caseload", "unarchive", caseload_id)
    assert result.exit_code == 0, result.stderr
    assert member.client.db(db.name).get("observation:1")["type"] == "observation"
    assert (registry_record(admin, caseload_id) or {})["status"] == "active"
    actions = [e["action"] for e in audit_entries(admin, caseload_id)]
    assert actions == ["caseload.create", "caseload.archive", "caseload.unarchive"]


def test_recreate_restores_an_archived_caseload(run_cli: Run, admin: CouchClient,
                                                caseload_ids: IdFactory,
                                                tmp_path: Path) -> None:
    caseload_id = caseload_ids()
    run_cli("caseload", "create", caseload_id, "--name", "Palliative")
    run_cli("caseload", "archive", caseload_id)
    manifest = write_yaml(tmp_path / "m.yaml", [{"id": caseload_id, "name": "Palliative"}])
    assert run_cli("caseload", "apply", str(manifest)).stdout.endswith("nothing to write\n")
    assert (registry_record(admin, caseload_id) or {})["status"] == "archived"  # apply keeps it

    result = run_cli("caseload", "create", caseload_id)
    assert result.stdout == (f"restored archived caseload {caseload_id} "
                             f"({caseload_db(caseload_id)}); members have access again\n")
    record = registry_record(admin, caseload_id)
    assert record is not None and (record["status"], record["name"]) == ("active", "Palliative")
    assert admin.db(caseload_db(caseload_id)).get_security() == caseload_security(caseload_id)


def test_archive_unknown_caseload(run_cli: Run, caseload_ids: IdFactory) -> None:
    caseload_id = caseload_ids()
    line = one_error_line(run_cli("caseload", "archive", caseload_id), 1)
    assert line == f"error: caseload {caseload_id} does not exist"


# -- destroy ------------------------------------------------------------------------------

def test_destroy_with_yes(run_cli: Run, admin: CouchClient, caseload_ids: IdFactory,
                          tmp_path: Path) -> None:
    caseload_id = caseload_ids()
    run_cli("caseload", "create", caseload_id, "--team", "t")
    result = run_cli("caseload", "destroy", caseload_id, "--yes")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (f"destroyed caseload {caseload_id}: {caseload_db(caseload_id)} "
                             "deleted, registry status destroyed\n")
    assert not admin.db(caseload_db(caseload_id)).exists()
    record = registry_record(admin, caseload_id)
    assert record is not None and (record["status"], record["team"]) == ("destroyed", "t")
    [entry] = [e for e in audit_entries(admin, caseload_id) if e["action"] ==
               "caseload.destroy"]
    assert entry["details"]["db"] == caseload_db(caseload_id)
    # Repeating is harmless; a manifest run leaves the destroyed caseload alone.
    assert run_cli("caseload", "destroy", caseload_id, "--yes").stdout == (
        f"caseload {caseload_id} was already destroyed\n")
    manifest = write_yaml(tmp_path / "m.yaml", [{"id": caseload_id}])
    report = json.loads(run_cli("caseload", "apply", str(manifest), "--json").stdout)
    assert report["caseloads"][0]["note"].startswith("destroyed;")
    assert not admin.db(caseload_db(caseload_id)).exists()
    # `create` brings it back, empty.
    assert run_cli("caseload", "create", caseload_id).exit_code == 0
    assert (registry_record(admin, caseload_id) or {})["status"] == "active"


def test_destroy_asks_for_the_id(run_cli: Run, admin: CouchClient,
                                 caseload_ids: IdFactory) -> None:
    caseload_id = caseload_ids()
    run_cli("caseload", "create", caseload_id)
    before = state(admin, [caseload_id])
    for answer in ("y\n", "", "wrong\n"):
        result = run_cli("caseload", "destroy", caseload_id, input=answer)
        assert result.exit_code == 1
        assert result.stderr.strip().splitlines()[-1] == (
            f"error: not confirmed; caseload {caseload_id} was not destroyed")
        assert "Type the caseload id to confirm" in result.stderr
    assert state(admin, [caseload_id]) == before

    dry = run_cli("caseload", "destroy", caseload_id, "--dry-run")
    assert dry.stdout.startswith(f"would destroy caseload {caseload_id}")
    assert admin.db(caseload_db(caseload_id)).exists()

    result = run_cli("caseload", "destroy", caseload_id, input=f"{caseload_id}\n")
    assert result.exit_code == 0, result.stderr
    assert not admin.db(caseload_db(caseload_id)).exists()


# -- errors and help ----------------------------------------------------------------------

def test_unreachable_server_and_bad_credentials(run_cli: Run, server: Server) -> None:
    os.environ["COUCHDB_URL"] = "http://127.0.0.1:9"
    line = one_error_line(run_cli("caseload", "list"), 1)
    assert line.startswith("error: cannot reach CouchDB at http://127.0.0.1:9")
    assert line.endswith("(is the server running? `carecouch server status`)")
    os.environ["COUCHDB_URL"] = server.url
    os.environ["COUCHDB_PASSWORD"] = "wrong"
    line = one_error_line(run_cli("caseload", "list"), 1)
    assert line.startswith("error: CouchDB refused the credentials")


def _entry_point() -> str:
    return str(Path(sys.executable).parent / "carecouch")


@pytest.mark.parametrize(("args", "code", "start"), [
    (["caseload", "create", "North District"], 2, "error: bad caseload id 'North District'"),
    (["caseload", "apply", "caseloads.csv"], 1,
     "error: caseloads.csv:3: bad caseload id 'North District'"),
])
def test_installed_command_gives_one_line_and_no_traceback(
        couch_env: dict[str, str], tmp_path: Path, args: list[str], code: int,
        start: str) -> None:
    (tmp_path / "caseloads.csv").write_text("id,name\nfine-1,Fine\nNorth District,N\n")
    done = subprocess.run([_entry_point(), *args], cwd=tmp_path, capture_output=True,
                          text=True, env={**os.environ, **couch_env}, timeout=60)
    assert done.returncode == code
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith(start), done.stderr
    assert "Traceback" not in done.stderr
