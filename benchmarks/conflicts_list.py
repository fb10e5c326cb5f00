"""Benchmark: `carecouch conflicts list` across many caseloads, against a scan of every document.

Makes C caseloads (default 100) of N documents each (default 1,000), P% of them conflicted
(default 1%: care plans two devices edited offline), pushed through the caseloads'
validation. Then, on the same server in the same run:

- `conflicts list`'s code path: per caseload one read of the `conflicts` view and one
  `_bulk_get` of the conflicted documents' live leaves, caseloads read 8 at a time;
- the peer, what a runbook does without the view: `_all_docs?include_docs=true&conflicts=true`
  over every document of every caseload, 8 caseloads at a time, keeping those with `_conflicts`.

The views are built during set-up (a running server keeps them built: CouchDB's background
indexer); the time that took is printed too.

    .venv/bin/python benchmarks/conflicts_list.py [--caseloads 100] [--docs 1000] [--percent 1]
"""

from __future__ import annotations

import argparse
import time

from conflicts_setup import Nurse, bench_caseloads, make_conflicts, observation, push_all, pushed
from support import couch_server

from carecouch.clock import utc_now
from carecouch.conflicts.finder import conflict_rows, find_conflicts
from carecouch.couch import CouchClient
from carecouch.errors import CarecouchError
from carecouch.ids import caseload_db
from carecouch.parallel import map_parallel
from carecouch.records import load_registry

WORKERS = 8


def fill(a: Nurse, b: Nurse, caseload: str, docs: int, conflicted: int) -> None:
    make_conflicts(a, b, caseload, conflicted)
    push_all(a.client.db(caseload_db(caseload)),
             [pushed(observation(a, n), None) for n in range(docs - conflicted)])


def scan(admin: CouchClient, caseload: str) -> list[str]:
    rows = admin.db(caseload_db(caseload)).all_docs(include_docs=True, conflicts=True)["rows"]
    return [r["id"] for r in rows if (r.get("doc") or {}).get("_conflicts")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caseloads", type=int, default=100)
    parser.add_argument("--docs", type=int, default=1_000)
    parser.add_argument("--percent", type=float, default=1.0)
    args = parser.parse_args()
    conflicted = max(1, round(args.docs * args.percent / 100))
    with couch_server() as (url, user, password, where):
        admin = CouchClient(url, user, password)
        print(f"server: {where}; {args.caseloads} caseloads x {args.docs} documents, "
              f"{conflicted} conflicted in each")
        with bench_caseloads(url, admin, args.caseloads, WORKERS) as (ids, a, b):
            started = time.perf_counter()
            for result in map_parallel(lambda c: fill(a, b, c, args.docs, conflicted), ids,
                                       workers=4):
                if isinstance(result, CarecouchError):
                    raise SystemExit(f"set-up failed: {result}")
            print(f"set-up: {args.caseloads * args.docs} documents pushed in "
                  f"{time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            map_parallel(lambda c: conflict_rows(admin.db(caseload_db(c)), c), ids,
                         workers=WORKERS)
            print(f"set-up: conflicts views built in {time.perf_counter() - started:.1f} s")

            registry = load_registry()
            started = time.perf_counter()
            found = find_conflicts(admin, ids, registry, now=utc_now(), workers=WORKERS)
            ours = time.perf_counter() - started
            started = time.perf_counter()
            scanned = map_parallel(lambda c: scan(admin, c), ids, workers=WORKERS)
            peer = time.perf_counter() - started
            total = sum(len(r) for r in scanned if isinstance(r, list))
            if found.errors or not len(found.items) == total == conflicted * args.caseloads:
                raise SystemExit(f"listing disagrees: {len(found.items)} vs {total}; "
                                 f"{found.errors}")
            print(f"  conflicts list (view)           {ours:7.2f} s  "
                  f"{len(found.items)} conflicts")
            print(f"  scan of every document           {peer:7.2f} s  {total} conflicts")
            print(f"  speed-up: x{peer / ours:.1f}")
        admin.close()


if __name__ == "__main__":
    main()
