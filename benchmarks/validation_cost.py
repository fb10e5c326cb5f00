"""Benchmark: what the clinical record rules cost on writes.

Bulk-writes N observations (default 10,000, in `_bulk_docs` batches of 1,000) as a nurse into
a caseload with the rules installed, and into one whose design document has everything but
`validate_doc_update`, on the same server in the same run; both as ordinary writes and as a
device's push (`new_edits=false`). Prints both times and the ratio.

    .venv/bin/python benchmarks/validation_cost.py [--count 10000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from support import couch_server

from carecouch.couch import CouchClient, Database, Doc
from carecouch.ddocs import default_couch_dir
from carecouch.ids import caseload_db, member_role, registry_doc_id
from carecouch.provisioning import Provisioner
from carecouch.registry import REGISTRY_DB

NURSE = "bench-nurse"
DEVICE = "tablet-1"


def observation(n: int) -> Doc:
    return {"_id": f"observation:{NURSE}~{DEVICE}:{uuid.uuid4()}", "type": "observation",
            "subject": f"patient-{n % 500:04d}", "author": NURSE, "device": DEVICE,
            "at": "2026-11-22T09:30:00.000Z", "clock_offset_ms": -420,
            "respiration_rate": 18, "spo2": 96, "spo2_scale": 1, "on_oxygen": False,
            "systolic_bp": 128, "pulse": 84, "consciousness": "A", "temperature": 37.2,
            "news2": 0}


def as_pushed(doc: Doc) -> Doc:
    rev = uuid.uuid4().hex
    return {**doc, "_rev": f"1-{rev}", "_revisions": {"start": 1, "ids": [rev]}}


def write_all(db: Database, count: int, batch: int, push: bool) -> float:
    docs = [observation(n) for n in range(count)]
    if push:
        docs = [as_pushed(d) for d in docs]
    started = time.perf_counter()
    for first in range(0, count, batch):
        result = db.bulk_docs(docs[first:first + batch], new_edits=not push)
        failed = [r for r in result if r.get("error")]
        if failed:
            raise SystemExit(f"a write was refused: {failed[0]}")
    elapsed = time.perf_counter() - started
    if db.info()["doc_count"] < count:
        raise SystemExit(f"{db.name} holds fewer than {count} documents")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1_000)
    args = parser.parse_args()
    with couch_server() as (url, user, password, where), \
            tempfile.TemporaryDirectory() as tmp:
        print(f"server: {where}; {args.count} observations in batches of {args.batch}")
        admin = CouchClient(url, user, password)
        no_rules = Path(tmp) / "couch"
        shutil.copytree(default_couch_dir(), no_rules)
        (no_rules / "validate_functions" / "validate_doc_update.js").unlink()
        cases: list[tuple[str, Path | None]] = [("with the rules", None),
                                                ("without validate_doc_update", no_rules)]
        ids = {label: f"bench{uuid.uuid4().hex[:8]}" for label, _ in cases}
        users = admin.db("_users")
        name = f"{NURSE}~{DEVICE}"
        password_ = uuid.uuid4().hex
        roles = ["clinical:nurse", *(member_role(i) for i in ids.values())]
        users.put({"_id": f"org.couchdb.user:{name}", "name": name, "type": "user",
                   "roles": roles, "password": password_})
        nurse = CouchClient(url, name, password_)
        try:
            for label, couch_dir in cases:
                Provisioner(admin, couch_dir=couch_dir).create(ids[label])
            results: dict[tuple[str, bool], float] = {}
            for push in (False, True):
                for label, _ in cases:
                    db = nurse.db(caseload_db(ids[label]))
                    results[(label, push)] = write_all(db, args.count, args.batch, push)
            for push in (False, True):
                way = "device push (new_edits=false)" if push else "ordinary _bulk_docs"
                with_rules = results[("with the rules", push)]
                without = results[("without validate_doc_update", push)]
                print(f"{way}:")
                print(f"  with the rules               {with_rules:7.2f} s  "
                      f"({args.count / with_rules:,.0f} docs/s)")
                print(f"  without validate_doc_update  {without:7.2f} s  "
                      f"({args.count / without:,.0f} docs/s)")
                print(f"  cost of the rules: x{with_rules / without:.2f}")
        finally:
            cleanup(admin, list(ids.values()), name)
            nurse.close()
            admin.close()


def remove(db: Database, doc_id: str) -> None:
    doc = db.get_or_none(doc_id)
    if doc is not None:
        db.delete(doc_id, doc["_rev"])


def cleanup(admin: CouchClient, ids: list[str], user: str) -> None:
    for caseload_id in ids:
        admin.db(caseload_db(caseload_id)).destroy(missing_ok=True)
        remove(admin.db(REGISTRY_DB), registry_doc_id(caseload_id))
    remove(admin.db("_users"), f"org.couchdb.user:{user}")


if __name__ == "__main__":
    main()
