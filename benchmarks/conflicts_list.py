"""Benchmark: `carecouch conflicts list` across many caseloads, against a scan of every document.

Makes C caseloads (default 100) of N documents each (default 1,000), P% of them conflicted
(default 1%: care plans two devices edited offline), pushed through the caseloads'
validation. Then, on the same server in the same run:

- `conflicts list`'s code path: per caseload one read of the `conflicts` view and one
  `_bulk_get` of the conflicted documents' live leaves, caseloads read 8 at a time;
- the peer, what a runbook does without the view: `_all_docs?include_docs=true&conflicts=true`
  over every document of every caseload, 8 caseloads at a time, keeping those with `_conflicts`.

The view's build is not hidden: the caseloads are filled while their design document has no
`conflicts` view (CouchDB's background indexer would otherwise build it during set-up, and
the listing would look as if it cost nothing), then the shipped design documents are
installed and the **first listing** runs at once, building the view in every caseload; it is
reported apart from the **warm listings** that follow, which alternate with the scans
(``--repeats`` of each: medians with the range).

    .venv/bin/python benchmarks/conflicts_list.py [--caseloads 100] [--docs 1000] [--percent 1]
        [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

from conflicts_setup import (
    Nurse,
    bench_caseloads,
    make_conflicts,
    observation,
    provision,
    push_all,
    pushed,
)
from support import couch_server, design_variant, spread

from carecouch import ddocs
from carecouch.clock import utc_now
from carecouch.conflicts.finder import VIEW, find_conflicts
from carecouch.couch import CouchClient, Doc
from carecouch.errors import CarecouchError
from carecouch.ids import caseload_db
from carecouch.parallel import map_parallel
from carecouch.records import Registry, load_registry

WORKERS = 8


def without_view(view: str) -> dict[str, Doc]:
    """The shipped design documents, less one view of the main one."""
    def edit(main: Doc) -> None:
        main["views"] = {k: v for k, v in main["views"].items() if k != view}
    return design_variant(edit)


def views_of(admin: CouchClient, caseload: str) -> dict[str, object]:
    views: dict[str, object] = admin.db(caseload_db(caseload)).get(ddocs.MAIN_DDOC_ID)["views"]
    return views


def fill(a: Nurse, b: Nurse, caseload: str, docs: int, conflicted: int) -> None:
    make_conflicts(a, b, caseload, conflicted)
    push_all(a.client.db(caseload_db(caseload)),
             [pushed(observation(a, n), None) for n in range(docs - conflicted)])


def scan(admin: CouchClient, caseload: str) -> list[str]:
    rows = admin.db(caseload_db(caseload)).all_docs(include_docs=True, conflicts=True)["rows"]
    return [r["id"] for r in rows if (r.get("doc") or {}).get("_conflicts")]


def listing(admin: CouchClient, ids: list[str], registry: Registry, expected: int) -> float:
    """``conflicts list``'s code path over every caseload: its time."""
    started = time.perf_counter()
    found = find_conflicts(admin, ids, registry, now=utc_now(), workers=WORKERS)
    elapsed = time.perf_counter() - started
    if found.errors or len(found.items) != expected:
        raise SystemExit(f"listing found {len(found.items)} of {expected}: {found.errors}")
    return elapsed


def scanning(admin: CouchClient, ids: list[str], expected: int) -> float:
    """The peer over every caseload: its time."""
    started = time.perf_counter()
    scanned = map_parallel(lambda c: scan(admin, c), ids, workers=WORKERS)
    elapsed = time.perf_counter() - started
    total = sum(len(r) for r in scanned if isinstance(r, list))
    if total != expected:
        raise SystemExit(f"scan found {total} of {expected}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--caseloads", type=int, default=100)
    parser.add_argument("--docs", type=int, default=1_000)
    parser.add_argument("--percent", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    conflicted = max(1, round(args.docs * args.percent / 100))
    expected = conflicted * args.caseloads
    registry = load_registry()
    with couch_server() as (url, user, password, where):
        admin = CouchClient(url, user, password)
        print(f"server: {where}; {args.caseloads} caseloads x {args.docs} documents, "
              f"{conflicted} conflicted in each")
        print(f"ours: the {VIEW} view, then _bulk_get of the leaves, {WORKERS} caseloads at a "
              f"time; the peer: _all_docs?include_docs=true&conflicts=true, {WORKERS} at a time")

        with bench_caseloads(url, admin, args.caseloads, WORKERS,
                             design=without_view(VIEW)) as (ids, a, b):
            started = time.perf_counter()
            for result in map_parallel(lambda c: fill(a, b, c, args.docs, conflicted), ids,
                                       workers=4):
                if isinstance(result, CarecouchError):
                    raise SystemExit(f"set-up: {result}")
            print(f"set-up: {args.caseloads * args.docs} documents pushed in "
                  f"{time.perf_counter() - started:.1f} s, the design documents holding no "
                  f"{VIEW} view (nothing for a background indexer to build)")
            if VIEW in views_of(admin, ids[0]):
                raise SystemExit(f"set-up: the {VIEW} view is installed already")
            started = time.perf_counter()
            provision(admin, ids, WORKERS)
            install = time.perf_counter() - started
            if VIEW not in views_of(admin, ids[-1]):
                raise SystemExit(f"set-up: the {VIEW} view was not installed")
            first = listing(admin, ids, registry, expected)
            warm: list[float] = []
            scans: list[float] = []
            for repeat in range(args.repeats):  # alternating, each first in turn
                if repeat % 2 == 0:
                    warm.append(listing(admin, ids, registry, expected))
                    scans.append(scanning(admin, ids, expected))
                else:
                    scans.append(scanning(admin, ids, expected))
                    warm.append(listing(admin, ids, registry, expected))
        admin.close()
    print(f"{expected} conflicts found by every listing and every scan")
    print(f"  {'shipped design documents installed (the view added)':54} {install:7.2f} s")
    print(f"  {'first listing: the view built in every caseload':54} {first:7.2f} s   "
          f"x{first / min(scans):.1f} of the fastest scan")
    print(f"    (CouchDB's background indexer may start on a design document as soon as it is "
          f"written: the build took at most {install + first:.2f} s)")
    print(f"  {f'warm listings ({args.repeats}), the view built':54} {spread(warm):>9}")
    print(f"  {f'scans of every document ({args.repeats})':54} {spread(scans):>9}")
    ratios = [s / w for s, w in zip(scans, warm, strict=True)]
    print(f"  speed-up of a warm listing over a scan: x{spread(ratios, 1, '')}")

if __name__ == "__main__":
    main()
