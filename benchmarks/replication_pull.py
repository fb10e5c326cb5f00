"""Replication speed of the reference device beside PouchDB's replicator, same server, same run.

    .venv/bin/python benchmarks/replication_pull.py [--docs 10000] [--rounds 3]

Figures (median of the rounds, each round on fresh local databases):

- initial pull of a caseload of ``--docs`` records of ~300 bytes: ours; PouchDB 9's replicator
  with default settings (batch_size 100); PouchDB with batch_size 1000; and one
  ``_changes?include_docs=true`` read of the same database, parsed (the practical floor);
- incremental sync (pull + push) after 100 documents changed on the server;
- push of 1,000 records written on the device.

Targets (issue "Reference field device"): initial pull >= 3x faster than PouchDB's default
replicator and within 1.5x of the single ``_changes`` read.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from replication_support import (
    BenchServer,
    bench_server,
    fill,
    new_store,
    pouchdb,
    replicator,
)

from carecouch.couch import Database
from mobile_stub.device import Device


def changes_read(db: Database) -> float:
    started = time.perf_counter()
    rows = db.changes(include_docs=True)["results"]
    elapsed = time.perf_counter() - started
    assert rows
    return elapsed


def change_on_server(db: Database, count: int) -> None:
    rows = db.all_docs(include_docs=True, limit=count, skip=count * 3)["rows"]
    db.bulk_docs([{**row["doc"], "note": f"changed {uuid.uuid4().hex}"} for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    figures: dict[str, list[float]] = {}

    def keep(name: str, seconds: float) -> None:
        figures.setdefault(name, []).append(seconds)

    with bench_server() as server, tempfile.TemporaryDirectory() as scratch:
        admin = server.client()
        print(f"server: {server.description}")
        for round_ in range(options.rounds):
            # A fresh database each round: the push phases add documents to it.
            db = admin.db(f"bench_pull_{uuid.uuid4().hex[:8]}")
            fill(db, options.docs)
            try:
                run_round(server, db, Path(scratch) / str(round_), options.docs, keep)
            finally:
                db.destroy(missing_ok=True)
            print(f"round {round_ + 1}/{options.rounds} done")
        admin.close()
    report(figures, options.docs)


def run_round(server: BenchServer, db: Database, scratch: Path, docs: int,
              keep: object) -> None:
    assert callable(keep)
    scratch.mkdir(parents=True)
    keep("floor", changes_read(db))

    store = new_store(scratch, db, server.url)
    ours = replicator(store, server)
    started = time.perf_counter()
    pulled = ours.sync(db.name, push=False)
    keep("ours_pull", time.perf_counter() - started)
    assert pulled.ok and pulled.pull.docs_written == docs, pulled.to_json()

    pouch = pouchdb(server, db, scratch / "pouch-default", "pull")
    assert pouch["docs_written"] == docs
    keep("pouch_pull", pouch["seconds"])
    keep("pouch_pull_1000", pouchdb(server, db, scratch / "pouch-1000", "pull",
                                    batch_size=1000)["seconds"])

    change_on_server(db, 100)
    started = time.perf_counter()
    incremental = ours.sync(db.name)
    keep("ours_incremental", time.perf_counter() - started)
    assert incremental.ok and incremental.pull.docs_written == 100
    keep("pouch_incremental", pouchdb(server, db, scratch / "pouch-default", "pull")["seconds"])

    device = Device(store, ours.credentials)
    for i in range(1000):
        device.new_record(db.name, "note", {"subject": f"patient:{i}", "text": f"visit {i}"})
    started = time.perf_counter()
    pushed = ours.sync(db.name, pull=False)
    keep("ours_push", time.perf_counter() - started)
    assert pushed.ok and pushed.push.docs_written == 1000
    pouchdb(server, db, scratch / "pouch-1000", "edit", count=1000)
    keep("pouch_push", pouchdb(server, db, scratch / "pouch-1000", "push")["seconds"])
    store.close()


def report(figures: dict[str, list[float]], docs: int) -> None:
    med = {name: statistics.median(values) for name, values in figures.items()}

    def ratio(numerator: str, denominator: str) -> float:
        # Per round, then the median: both figures of a round saw the same machine load.
        return statistics.median(a / b for a, b in zip(figures[numerator], figures[denominator],
                                                       strict=True))

    print()
    print(f"initial pull of {docs} docs (median of {len(figures['floor'])} rounds; ratios are "
          "medians of per-round ratios):")
    print(f"  carecouch-device replicator        {med['ours_pull']:7.2f} s")
    print(f"  PouchDB 9 replicator, defaults     {med['pouch_pull']:7.2f} s   "
          f"ours is {ratio('pouch_pull', 'ours_pull'):.1f}x faster (target >= 3x)")
    print(f"  PouchDB 9 replicator, batch 1000   {med['pouch_pull_1000']:7.2f} s   "
          f"ours is {ratio('pouch_pull_1000', 'ours_pull'):.1f}x faster")
    print(f"  one _changes?include_docs=true     {med['floor']:7.2f} s   "
          f"ours takes {ratio('ours_pull', 'floor'):.2f}x (target <= 1.5x)")
    print("incremental sync, 100 docs changed on the server:")
    print(f"  carecouch-device (pull + push)     {med['ours_incremental']:7.2f} s")
    print(f"  PouchDB 9 replicator (pull)        {med['pouch_incremental']:7.2f} s")
    print("push of 1000 records written on the device:")
    print(f"  carecouch-device                   {med['ours_push']:7.2f} s")
    print(f"  PouchDB 9 replicator               {med['pouch_push']:7.2f} s")
    print("all rounds: " + ", ".join(f"{k}={'/'.join(f'{v:.2f}' for v in vs)}"
                                     for k, vs in sorted(figures.items())))


if __name__ == "__main__":
    main()
