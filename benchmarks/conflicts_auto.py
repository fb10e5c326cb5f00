"""Benchmark: auto-resolving N mergeable conflicts in one caseload, batched vs one at a time.

Two caseloads on the same server, each with N (default 1,000) care plans that two nurses'
devices edited offline and pushed (a real conflict each). The first is resolved by
`carecouch conflicts auto`'s code path: one `_bulk_get` per 200 documents to read the leaves,
then per 200 documents one `_bulk_docs` of resolution records, one of merged revisions and
tombstones, two checks and one audit write. The second, the peer, does the same work the
way a runbook does it, one request at a time: per document, read its leaves, write the
resolution record, write the merged revision, write the tombstone, write the audit entry.
Both compute the same plans (the merge itself is the library's) and both start with the
conflicts view built, as on a running server. Prints both times.

    .venv/bin/python benchmarks/conflicts_auto.py [--count 1000]
"""

from __future__ import annotations

import argparse
import time

from conflicts_setup import bench_caseloads, make_conflicts
from support import couch_server

from carecouch.audit import AuditLog
from carecouch.clock import utc_now
from carecouch.conflicts.apply import RESOLVED, AuditSink, apply_plans
from carecouch.conflicts.auto import plan_caseloads
from carecouch.conflicts.branches import read_conflict
from carecouch.conflicts.finder import conflict_rows
from carecouch.conflicts.identity import current_resolver
from carecouch.conflicts.plan import Plan, plan_auto
from carecouch.couch import CouchClient, doc_path
from carecouch.ids import caseload_db
from carecouch.records import load_registry


def batched(admin: CouchClient, caseload: str) -> tuple[float, int, int]:
    registry = load_registry()
    before = sum(admin.request_counts.values())
    started = time.perf_counter()
    resolver = current_resolver(admin)
    now = utc_now()
    planned = plan_caseloads(admin, [caseload], registry, resolver=resolver, now=now)
    outcomes = apply_plans(admin, caseload, planned.plans, audit=AuditSink(admin, "bench"))
    elapsed = time.perf_counter() - started
    resolved = sum(1 for o in outcomes if o.status == RESOLVED)
    return elapsed, resolved, sum(admin.request_counts.values()) - before


def one_at_a_time(admin: CouchClient, caseload: str) -> tuple[float, int, int]:
    registry = load_registry()
    db = admin.db(caseload_db(caseload))
    audit = AuditLog(admin, "bench")
    before = sum(admin.request_counts.values())
    started = time.perf_counter()
    resolver = current_resolver(admin)
    now = utc_now()
    resolved = 0
    for row in conflict_rows(db, caseload):
        conflict = read_conflict(db, caseload, row.doc_id, registry, attachments=True)
        plan: Plan | None = plan_auto(conflict, registry, resolver=resolver, now=now)
        if plan is None:
            continue
        db.put(plan.record)
        for doc in plan.writes:
            admin.request("PUT", f"{db.path}/{doc_path(doc['_id'])}", json_body=doc,
                          params={"new_edits": False})
        audit.record("conflict.resolve", caseload,
                     {"doc": plan.doc_id, "resolution": plan.resolution_id})
        resolved += 1
    elapsed = time.perf_counter() - started
    return elapsed, resolved, sum(admin.request_counts.values()) - before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000)
    args = parser.parse_args()
    with couch_server() as (url, user, password, where):
        admin = CouchClient(url, user, password)
        print(f"server: {where}; {args.count} mergeable conflicts per caseload")
        with bench_caseloads(url, admin, 2) as (ids, a, b):
            setup = time.perf_counter()
            for cid in ids:
                make_conflicts(a, b, cid, args.count)
            for cid in ids:  # a running server keeps its views built (CouchDB: ken)
                conflict_rows(admin.db(caseload_db(cid)), cid)
            print(f"set-up: {2 * args.count} conflicts pushed and the conflicts views built "
                  f"in {time.perf_counter() - setup:.1f} s")
            AuditLog(admin, "bench").ensure()
            ours = batched(admin, ids[0])
            peer = one_at_a_time(admin, ids[1])
            for label, (elapsed, resolved, requests) in (("conflicts auto (batched)", ours),
                                                         ("one request at a time", peer)):
                print(f"  {label:26} {elapsed:7.2f} s  {resolved} resolved  "
                      f"{requests} requests  ({resolved / elapsed:,.0f} conflicts/s)")
            print(f"  speed-up: x{peer[0] / ours[0]:.1f}")
            for cid in ids:
                left = conflict_rows(admin.db(caseload_db(cid)), cid)
                if left:
                    raise SystemExit(f"{len(left)} conflicts left in {cid}")
        admin.close()


if __name__ == "__main__":
    main()
