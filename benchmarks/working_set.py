"""Critical updates first: how long after reconnecting a new order is on the device, with a
backlog of ordinary records in front of it; and what the working-set pass after a sync costs.

A device syncs a provisioned caseload through the ``carecouch/device`` filter, goes offline,
and meanwhile 10,000 ordinary observations and then 1 new order sign-off arrive on the server
(the order last: the worst place in the changes feed). On reconnect, over a field link of
``--link-kbps`` (default 2000 kbit/s, a rural mobile connection; 0: loopback, unthrottled),
the time until the order is in the device's store, measured by a second connection polling
the store every 5 ms:

- our figure: the device as it ships, which pulls the registry's urgent records first;
- the peer: the same device doing one ordinary pull (the urgent pull switched off), i.e. what
  any CouchDB client does: the order arrives when the backlog has been pulled.

Fresh devices alternate (ours, peer, ours, peer...) against the same server in the same run;
medians are printed. Then the minimisation pass over the store of 10,001 records: a full pass
(the filter's parameters changed) and an incremental one (nothing changed since).

    .venv/bin/python benchmarks/working_set.py [--backlog 10000] [--rounds 2] [--link-kbps 2000]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.support import bench_target  # noqa: E402
from carecouch.couch import CouchClient, Database  # noqa: E402
from carecouch.ddocs import DEVICE_FILTER  # noqa: E402
from carecouch.ids import caseload_db  # noqa: E402
from carecouch.provisioning import Provisioner  # noqa: E402
from carecouch.records import load_registry, new_record_id  # noqa: E402
from carecouch.rules import shipped_rules  # noqa: E402
from mobile_stub.credentials import StaticCredentials  # noqa: E402
from mobile_stub.crypto import KdfParams  # noqa: E402
from mobile_stub.replication import ReplicationFilter, Replicator  # noqa: E402
from mobile_stub.replication.replicator import _UrgentPull  # noqa: E402
from mobile_stub.store import DeviceStore  # noqa: E402
from mobile_stub.working_set import Holding, minimise  # noqa: E402
from tests.helpers.chaos_proxy import ChaosProxy  # noqa: E402  (its rate: the field link)

VITALS: dict[str, Any] = {"respiration_rate": 18, "spo2": 96, "spo2_scale": 1,
                          "on_oxygen": False, "systolic_bp": 128, "pulse": 84,
                          "consciousness": "A", "temperature": 37.2, "news2": 0}


REGISTRY = load_registry()


def stamp(record_type: str, **fields: Any) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {"_id": new_record_id(REGISTRY, record_type, "colleague~tablet-2"),
            "type": record_type,
            "subject": f"patient-{uuid.uuid4().hex[:6]}", "author": "colleague",
            "device": "tablet-2", "at": now, "clock_offset_ms": -420, **fields}


def not_before() -> str:
    return (datetime.now(UTC) - timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_device(directory: Path, db: Database, url: str, user: str, password: str
               ) -> Replicator:
    store = DeviceStore.create(directory / f"{uuid.uuid4().hex}.sqlite",
                               "benchmark store passphrase",
                               kdf=KdfParams.new(memory_kib=8 * 1024, iterations=1))
    store.add_database(db.name, url, ReplicationFilter.design(
        DEVICE_FILTER, not_before=not_before()).canonical())
    replicator = Replicator(store, StaticCredentials(user, password))
    assert replicator.sync(db.name).ok  # in step with the server before going offline
    return replicator


def time_to_order(replicator: Replicator, db: Database, order_id: str) -> tuple[float, float]:
    """Sync once; (seconds until the order is in the store, seconds for the whole sync)."""
    path = replicator.store.path
    seen: list[float] = []
    stop = threading.Event()
    started = time.perf_counter()

    def watch() -> None:
        conn = sqlite3.connect(path, timeout=5)
        try:
            while not stop.is_set():
                if conn.execute("SELECT 1 FROM docs WHERE doc_id = ?", (order_id,)).fetchone():
                    seen.append(time.perf_counter() - started)
                    return
                time.sleep(0.005)
        finally:
            conn.close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    report = replicator.sync(db.name)
    total = time.perf_counter() - started
    time.sleep(0.02)
    stop.set()
    watcher.join()
    assert report.ok, report.message
    return (seen[0] if seen else total), total


@contextmanager
def urgent_pull_off() -> Any:
    """The peer: the same replicator without its urgent pull."""
    original = _UrgentPull.run
    _UrgentPull.run = lambda self: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        _UrgentPull.run = original  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--link-kbps", type=int, default=2000)
    args = parser.parse_args()
    with bench_target() as target:
        parsed = urlsplit(target.url)
        link = ChaosProxy(parsed.hostname or "127.0.0.1", parsed.port or 5984,
                          rate=args.link_kbps * 1000 // 8)
        with link:
            run(target, link, args)


def run(target: Any, link: ChaosProxy, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        admin = CouchClient(target.url, target.user, target.password)
        caseload_id = f"bench-{uuid.uuid4().hex[:8]}"
        Provisioner(admin).create(caseload_id, name="working-set benchmark")
        db = admin.db(caseload_db(caseload_id))
        try:
            devices = [new_device(Path(tmp), db, link.url, target.user, target.password)
                       for _ in range(2 * args.rounds)]
            for start in range(0, args.backlog, 1000):
                written = db.bulk_docs([stamp("observation", **VITALS)
                                        for _ in range(min(1000, args.backlog - start))])
                assert all(item.get("ok") for item in written), written[:1]
            order = stamp("order_signoff", order="order-77", status="open",
                          description="Start oral amoxicillin 500 mg TDS for 5 days")
            db.put(order)
            ours: list[tuple[float, float]] = []
            peer: list[tuple[float, float]] = []
            carried: list[int] = []
            for index, replicator in enumerate(devices):
                before = link.stats.bytes_forwarded
                if index % 2 == 0:
                    ours.append(time_to_order(replicator, db, order["_id"]))
                else:
                    with urgent_pull_off():
                        peer.append(time_to_order(replicator, db, order["_id"]))
                carried.append(link.stats.bytes_forwarded - before)
            where = (f"{target.description}, over a {args.link_kbps} kbit/s link"
                     if args.link_kbps else target.description)
            report(where, args.backlog, ours, peer)
            print(f"  each sync carried {statistics.median(carried) / 1e6:.1f} MB "
                  "(median, both ways) over the link")
            minimisation(devices[0], db.name)
        finally:
            for replicator in devices if "devices" in locals() else []:
                replicator.store.close()
            db.destroy(missing_ok=True)


def report(where: str, backlog: int, ours: list[tuple[float, float]],
           peer: list[tuple[float, float]]) -> None:
    print(f"server: {where}; backlog {backlog} ordinary records + 1 new order (last in the "
          f"feed); {len(ours)} fresh devices each way, alternating")
    print(f"  urgent first (carecouch):   order on the device after "
          f"{statistics.median(t for t, _ in ours):.3f} s (median); whole sync "
          f"{statistics.median(t for _, t in ours):.2f} s")
    print(f"  one ordinary pull (peer):   order on the device after "
          f"{statistics.median(t for t, _ in peer):.3f} s (median); whole sync "
          f"{statistics.median(t for _, t in peer):.2f} s")
    ratio = statistics.median(t for t, _ in peer) / statistics.median(t for t, _ in ours)
    print(f"  the order arrives {ratio:.1f}x sooner; goal: within 1 s whatever the backlog")


def minimisation(replicator: Replicator, name: str) -> None:
    local = replicator.store.database(name)
    rules = shipped_rules()
    count = len(local.doc_ids())
    holding = Holding(query={"not_before": not_before()})
    started = time.perf_counter()
    minimise(local, holding, rules, datetime.now(UTC))
    full = time.perf_counter() - started
    started = time.perf_counter()
    minimise(local, holding, rules, datetime.now(UTC))
    incremental = time.perf_counter() - started
    print(f"working-set pass over {count} records: full {full:.2f} s "
          f"({full / count * 1e6:.0f} us a record), incremental {incremental * 1000:.1f} ms")


if __name__ == "__main__":
    main()
