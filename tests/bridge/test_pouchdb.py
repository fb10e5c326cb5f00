"""A real PouchDB client (npm ``pouchdb``, Node, LevelDB on disk) replicates a caseload with
credentials and the replication filter the bridge issued: it pushes its own record and pulls
exactly what the policy's filter says a device should hold."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.helpers.bridges import BridgeServer, World
from tests.helpers.records import envelope, now, observation

ROOT = Path(__file__).resolve().parents[2]
PEER = ROOT / "tests" / "helpers" / "pouchdb_peer.js"


def run_peer(args: dict[str, Any]) -> dict[str, Any]:
    result = subprocess.run(["node", str(PEER), json.dumps(args)], capture_output=True,
                            text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def test_pouchdb_replicates_with_bridge_credentials_and_filter(
        bridge: BridgeServer, world: World, tmp_path: Path) -> None:
    db = world.admin.db(f"caseload_{world.caseloads['c']}")
    recent = observation("seed", "seed-device", subject="patient-100")
    old = observation("seed", "seed-device", subject="patient-100", at=now(-60 * 24 * 60))
    pinned_old = observation("seed", "seed-device", subject="patient-007",
                             at=now(-60 * 24 * 60))
    note = envelope("progress_note", "seed", "seed-device", text="Not for this device.")
    for doc in (recent, old, pinned_old, note):
        db.put(doc)  # the server admin, on the clinicians' behalf

    hca = bridge.enrolled_device(world.user("hca"))
    creds = hca.credentials()
    [target] = [d for d in creds["databases"] if d["caseload"] == world.caseloads["c"]]
    params = target["filter"]["query_params"]
    assert params["types"] == "observation,task" and params["subjects"] == "patient-007"
    mine = observation(hca.user, hca.device_id, subject="patient-100")

    answer = run_peer({
        "pouchdb": str(ROOT / "node_modules" / "pouchdb"), "local": str(tmp_path / "device"),
        "remote": target["url"], "username": creds["username"],
        "password": creds["password"],
        "steps": [{"op": "put", "docs": [mine]},
                  {"op": "sync", "options": {"pull": {
                      "filter": target["filter"]["name"], "query_params": params}}},
                  {"op": "dump"}]})
    held = set(answer["dump"])
    assert {recent["_id"], pinned_old["_id"], mine["_id"]} <= held
    assert old["_id"] not in held and note["_id"] not in held  # minimised by the filter
    assert not any(doc_id.startswith("_design/") for doc_id in held)
    stored = db.get(mine["_id"])
    assert (stored["author"], stored["device"]) == (hca.user, hca.device_id)
    assert answer["sync"][0]["push"] == 1
