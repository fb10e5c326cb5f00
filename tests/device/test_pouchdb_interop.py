"""A PouchDB client (npm ``pouchdb``, run in Node) and the device replicate the same database
and converge: same documents, same leaves, same histories, same conflict winner."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from carecouch import embedded
from carecouch.couch import CouchClient, Database
from carecouch.ddocs import DEVICE_FILTER
from carecouch.ids import caseload_db, member_role
from carecouch.provisioning import Provisioner
from carecouch.records import load_registry
from carecouch.working_set import urgent_selector
from mobile_stub.device import Device
from tests.helpers.fixtures import User
from tests.helpers.records import observation, order_signoff

from .support import device_leaves, pouch_leaves, server_leaves

PEER = Path(__file__).resolve().parent.parent / "helpers" / "pouchdb_peer.js"


def pouchdb(tmp_path: Path, url: str, user: User, steps: list[dict[str, Any]]) -> Any:
    node = shutil.which("node")
    module = embedded.project_root() / "node_modules" / "pouchdb"
    if node is None or not module.is_dir():
        pytest.fail("the PouchDB peer needs node and node_modules/pouchdb (npm ci)")
    args = {"pouchdb": str(module), "local": str(tmp_path / "pouch" / "db"), "remote": url,
            "username": user.name, "password": user.password, "steps": steps}
    (tmp_path / "pouch").mkdir(exist_ok=True)
    done = subprocess.run([node, str(PEER), json.dumps(args)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_pouchdb_and_the_device_converge(tmp_path: Path, member_db: Database, member: User,
                                         make_device: Callable[..., Device]) -> None:
    url = f"{member_db.client.url}/{member_db.name}"
    member_db.put({"_id": "careplan:shared", "type": "careplan", "goals": []})
    device = make_device(member_db, member)
    assert device.sync(member_db.name).ok
    pouch_docs = [{"_id": f"observation:pouch{i}", "type": "observation", "value": i}
                  for i in range(20)]
    pouchdb(tmp_path, url, member, [{"op": "put", "docs": pouch_docs}, {"op": "sync"}])

    # Both sides edit the shared record while apart: a conflict.
    for i in range(20):
        device.new_record(member_db.name, "observation", {"value": i, "by": "device"})
    local = device.store.database(member_db.name)
    device.edit(member_db.name, {**local.get("careplan:shared"), "goals": ["device"]})
    pouchdb(tmp_path, url, member, [{"op": "edit", "id": "careplan:shared",
                                     "set": {"goals": ["pouch"]}}])

    assert device.sync(member_db.name).ok
    result = pouchdb(tmp_path, url, member, [{"op": "sync"}, {"op": "dump"}])
    assert device.sync(member_db.name).ok

    expected = server_leaves(member_db)
    assert len(expected) == 41 and len(expected["careplan:shared"]) == 2
    assert device_leaves(local) == expected
    assert pouch_leaves(result["dump"]) == expected
    winner = member_db.get("careplan:shared")["_rev"]
    assert local.get("careplan:shared")["_rev"] == winner


def test_a_pouchdb_app_keeping_checkpoints_on_the_device_cannot_be_made_to_skip(
        tmp_path: Path, member_db: Database, member: User,
        make_user: Callable[..., User]) -> None:
    """What docs/device.md tells a PouchDB app: with PouchDB's default checkpoints (on both
    sides), another member who raises the server copy of the app's pull checkpoint hides new
    records from it; with ``checkpoint: "target"`` on the pull (``"source"`` on the push)
    PouchDB keeps and reads its checkpoints on the device only."""
    url = f"{member_db.client.url}/{member_db.name}"
    attacker = make_user(roles=[member.roles[0]]).client.db(member_db.name)
    member_db.bulk_docs([{"_id": f"observation:old{i}", "type": "observation"}
                        for i in range(10)])

    def raise_checkpoints(local_requests: list[str]) -> int:
        forged = 0
        for doc_id in {r.split(" ", 1)[1] for r in local_requests if r.startswith("PUT ")}:
            doc = attacker.get(doc_id)
            doc["last_seq"] = member_db.info()["update_seq"]
            attacker.put(doc)
            forged += 1
        return forged

    # PouchDB's default: the app resumes from the server copy, which the attacker raised.
    default = tmp_path / "default"
    default.mkdir()
    first = pouchdb(default, url, member, [{"op": "pull"}])
    assert first["pull"] == [10]
    member_db.bulk_docs([{"_id": f"observation:new{i}", "type": "observation"}
                        for i in range(30)])
    assert raise_checkpoints(first["local_requests"]) == 1
    assert pouchdb(default, url, member, [{"op": "pull"}])["pull"] == [0]  # 30 hidden

    # As carecouch asks: the checkpoint lives on the device only; nothing on the server moves it.
    safe = tmp_path / "safe"
    safe.mkdir()
    options = {"checkpoint": "target"}
    first = pouchdb(safe, url, member, [{"op": "pull", "options": options}])
    assert first["pull"] == [40] and first["local_requests"] == []
    member_db.bulk_docs([{"_id": f"observation:newer{i}", "type": "observation"}
                        for i in range(30)])
    assert raise_checkpoints(first["local_requests"]) == 0  # nothing of it on the server
    again = pouchdb(safe, url, member, [{"op": "pull", "options": options}])
    assert again["pull"] == [30] and again["local_requests"] == []


def test_a_pouchdb_app_pulls_urgent_records_first_as_docs_device_md_shows(
        tmp_path: Path, admin: CouchClient, caseload_ids: Callable[[], str],
        make_user: Callable[..., User]) -> None:
    """docs/device.md, "Critical updates first": ``replicate.from(remote, {selector})`` with
    the urgent selector, then the device filter; the standard protocol, nothing else."""
    caseload_id = caseload_ids()
    Provisioner(admin).create(caseload_id)
    ward = admin.db(caseload_db(caseload_id))
    ward.bulk_docs([observation("colleague", "tablet-2") for _ in range(50)])
    order = order_signoff("carecouch-bridge")
    ward.put(order)
    nurse = make_user(roles=[member_role(caseload_id), "clinical:nurse"])
    params = {"types": "observation,order_signoff", "not_before": "2026-01-01T00:00:00Z"}
    selector = urgent_selector(load_registry(), params)
    result = pouchdb(tmp_path, f"{ward.client.url}/{ward.name}", nurse, [
        {"op": "pull", "options": {"selector": selector, "checkpoint": "target"}},
        {"op": "pull", "options": {"filter": DEVICE_FILTER, "query_params": params,
                                   "checkpoint": "target"}},
        {"op": "dump"}])
    assert result["pull"] == [1, 50]  # the order alone first, then the backlog
    assert order["_id"] in result["dump"] and len(result["dump"]) == 51
