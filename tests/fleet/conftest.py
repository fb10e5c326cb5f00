"""A fleet of its own: caseloads, a policy and a bridge (with a metrics token) that no other
test shares, so every count the fleet surfaces show is this module's.

Devices reach CouchDB through a chaos proxy (the bridge hands out the proxy's URL), so a test
can take "the server" away from the devices and give it back without stopping the shared
server; the bridge itself talks to CouchDB directly.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from carecouch.couch import CouchClient
from carecouch.credentials import CredentialStore
from carecouch.fleet import FLEET_DB
from carecouch.ids import caseload_db, registry_doc_id
from carecouch.provisioning import Provisioner
from carecouch.registry import REGISTRY_DB
from mobile_stub import reports
from mobile_stub.device import Device
from mobile_stub.session import BridgeSession
from tests.fleet.support import METRICS_TOKEN, POLICY, REFUSING, VITALS, Fleet, Scenario
from tests.helpers.bridges import BridgeEnv, start_bridge
from tests.helpers.chaos_proxy import ChaosProxy
from tests.helpers.server import Server


@pytest.fixture(scope="session")
def fleet(server: Server, admin: CouchClient, bridge_env: BridgeEnv,  # noqa: F811
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    run = uuid.uuid4().hex[:8]
    ids = {"north": f"f{run}-north", "south": f"f{run}-south", "east": f"f{run}-east",
           "west": f"f{run}-west"}  # west: tests of their own, beside the scenario's
    provisioner = Provisioner(admin)
    for key, caseload in ids.items():
        provisioner.create(caseload, name=f"Fleet {key}",
                           team={"east": f"other-{run}", "west": f"medics-{run}"}.get(
                               key, f"fleet-{run}"))
        admin.db(caseload_db(caseload)).put({"_id": "_design/refusing",
                                             "validate_doc_update": REFUSING})
    target = urlsplit(server.url)
    proxy = ChaosProxy(target.hostname or "127.0.0.1", target.port or 5984).__enter__()
    directory = tmp_path_factory.mktemp("fleet")
    settings: dict[str, Any] = {"CARECOUCH_BRIDGE_PUBLIC_COUCHDB_URL": proxy.url,
                                "CARECOUCH_BRIDGE_METRICS_TOKEN": METRICS_TOKEN}
    bridge, running = start_bridge(server, bridge_env, directory / "bridge",
                             POLICY.format(run=run), settings)
    found = Fleet(run, bridge, proxy, admin, ids, directory=directory)
    try:
        yield found
    finally:
        running.stop(bridge.app)
        proxy.__exit__(None, None, None)
        for store in found.stores:
            try:
                store.close()
            except Exception:  # noqa: BLE001 - wiped or closed by a test
                pass
        _cleanup(admin, run, list(ids.values()))


def _cleanup(admin: CouchClient, run: str, caseloads: list[str]) -> None:
    registry = admin.db(REGISTRY_DB)
    statuses = admin.db(FLEET_DB)
    for row in registry.all_docs(include_docs=True)["rows"]:
        doc = row.get("doc") or {}
        if doc.get("type") == "device" and str(doc.get("enrolled_by")).endswith(f"-{run}"):
            registry.delete(doc["_id"], doc["_rev"])
            status = statuses.get_or_none(f"device:{doc['id']}")
            if status is not None:
                statuses.delete(status["_id"], status["_rev"])
    for session in list(CredentialStore(admin).sessions()):
        if session.user.endswith(f"-{run}"):
            CredentialStore(admin).delete(session.name)
    for caseload in caseloads:
        admin.db(caseload_db(caseload)).destroy(missing_ok=True)
        record = registry.get_or_none(registry_doc_id(caseload))
        if record is not None:
            registry.delete(record["_id"], record["_rev"])


def _observation(device: Device, db: str) -> None:
    device.new_record(db, "observation", {"subject": "patient-0042", **VITALS})


@pytest.fixture(scope="session")
def scenario(fleet: Fleet) -> Scenario:
    """Eight tablets, every way a sync goes (north and south are each tablet's caseloads):

    - alpha ("Ward 3 tablet") syncs two observations; golf is enrolled, never syncs;
    - bravo writes one the server refuses (fleet.refused);
    - charlie and delta edit the same care plan offline: a conflict in south;
    - echo syncs, then the server goes away; it records two observations, its sync stops,
      and it reports that (pending 2) to the bridge, which it can still reach;
    - foxtrot's sync stops while the server is away, and reports late, after the next one;
    - hotel, a senior nurse, takes break-glass access to east.

    North: 10 syncs, 7 ok, 1 refused, 2 stopped; south: 10, 8 ok, 2 stopped; 1 conflict."""
    names = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"]
    made = {n: fleet.device(n, label="Ward 3 tablet" if n == "alpha" else None)
            for n in names}
    queued: dict[str, list[dict[str, Any]]] = {}
    north, south = fleet.db("north"), fleet.db("south")

    def sync(name: str, *, send: bool = True) -> None:
        session, device = made[name]
        device.sync_all()
        queued[name] = reports.queued(session.store)
        if send:
            reports.send(session.store, session)

    alpha = made["alpha"][1]
    _observation(alpha, north)
    _observation(alpha, north)
    sync("alpha")
    made["bravo"][1].new_record(north, "progress_note", {
        "subject": "patient-0042", "text": "Dressing changed", "visit": "refuse-me"})
    sync("bravo")
    charlie, delta = made["charlie"][1], made["delta"][1]
    plan = charlie.new_record(south, "care_plan", {"subject": "patient-0042",
                                                   "title": "Leg ulcer"})
    sync("charlie")
    sync("delta")
    for device, title in ((charlie, "Leg ulcer, left"), (delta, "Leg ulcer, right")):
        device.store.set_offline(True)
        device.update(south, plan["_id"], {"title": title})
        device.store.set_offline(False)
    sync("charlie")
    sync("delta")
    sync("echo")
    fleet.proxy.outage_after(0)
    try:
        _observation(made["echo"][1], north)
        _observation(made["echo"][1], north)
        sync("echo")        # stops; the bridge still hears of it
        sync("foxtrot", send=False)
    finally:
        fleet.proxy.heal()
    sync("foxtrot")         # its stopped sync's reports arrive now, late
    hotel = fleet.device("hotel")[0]
    hotel_token = fleet.token(f"hotel-{fleet.run}", "nurses-{run}", "senior-{run}")
    BridgeSession(hotel.store, token=hotel_token).break_glass(
        fleet.caseloads["east"], "Patient transferred overnight, records needed now")
    devices = {n: made[n][0].store.device_id for n in names}
    devices["hotel"] = hotel.store.device_id
    return Scenario(fleet, devices, queued, plan["_id"])
