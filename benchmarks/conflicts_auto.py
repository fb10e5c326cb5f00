"""Benchmark: auto-resolving N mergeable conflicts in one caseload, batched vs one at a time,
and where each spends its time.

Each round makes three caseloads on the same server, each with N (default 1,000) care plans
that two nurses' devices edited offline and pushed (a real conflict each), the conflicts
views built (as on a running server), and resolves them:

- **batched**, `carecouch conflicts auto`'s code path: one `_bulk_get` per 200 documents to
  read the leaves, then per 200 documents one `_bulk_docs` of resolution records, one of
  merged revisions and tombstones, one `_changes` check and one audit write;
- **batched, no validate_doc_update**: the same, in a caseload whose design document lacks
  only the validation function: the difference is what the server's validation costs (on
  CouchDB, a trip through the JavaScript engine for every document written);
- **one at a time**, the peer: the same work the way a runbook does it, per document: read its
  leaves, write the resolution record, the merged revision, the tombstone, the audit entry.

All compute the same plans (the merge itself is the library's). After an untimed warm-up
(both ways on a few conflicts), the order of the runs is reversed every other round
(``--rounds``, default 2). Every run is broken down by phase: the
time spent in each kind of request (from sending it, body encoding included, to the last
byte of the answer), how many requests and documents, and what is left, the client's own
work (planning, merging, decoding answers). The requests of a run are all sent one after the
other, so on a cluster each one pays the coordinator's round trip to the shard copies.

    .venv/bin/python benchmarks/conflicts_auto.py [--count 1000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from conflicts_setup import bench_caseloads, make_conflicts, provision
from support import couch_server, spread, with_validation

from carecouch.audit import AUDIT_DB, AuditLog
from carecouch.clock import utc_now
from carecouch.conflicts.apply import BATCH as APPLY_BATCH
from carecouch.conflicts.apply import AuditSink, OutcomeStatus, apply_plans
from carecouch.conflicts.auto import plan_caseloads
from carecouch.conflicts.branches import BATCH as BRANCH_BATCH
from carecouch.conflicts.branches import read_conflict
from carecouch.conflicts.finder import conflict_rows
from carecouch.conflicts.identity import current_resolver
from carecouch.conflicts.plan import Plan, plan_auto
from carecouch.couch import CouchClient, doc_path
from carecouch.errors import CarecouchError
from carecouch.ids import caseload_db
from carecouch.records import load_registry

BATCHED, NO_VDU, SERIAL = ("conflicts auto (batched)", "batched, no validate_doc_update",
                           "one request at a time")
WARM_UP = 50
CLIENT = "on the client (planning, merging, decoding)"
PHASES = ("clock offset (GET /)", "database info (update_seq)", "read the conflicts view",
          "fetch the leaves", "check the leaves (_changes, _all_docs)",
          "write resolution records", "write merged revisions + tombstones",
          "audit database checks", "audit writes", "other")


@dataclass
class Phase:
    seconds: float = 0.0
    requests: int = 0
    docs: int = 0


def phase_of(method: str, path: str, params: Mapping[str, Any] | None,
             body: Any) -> tuple[str, int]:
    """Which phase a request belongs to, and how many documents it carries."""
    db, _, rest = path.strip("/").partition("/")
    docs = body.get("docs") if isinstance(body, dict) else None
    count = len(docs) if isinstance(docs, list) else 0
    params = params or {}
    if not db:
        return PHASES[0], 0
    if db == AUDIT_DB:
        return (PHASES[8], count) if rest == "_bulk_docs" else (PHASES[7], 0)
    if not rest and method == "GET":
        return PHASES[1], 0
    if "/_view/" in rest:
        return PHASES[2], 0
    if rest == "_bulk_get":  # documents, not the leaves asked for (two or more each)
        return PHASES[3], len({d.get("id") for d in docs or []})
    if method == "GET" and "open_revs" in params:
        return PHASES[3], 1
    if rest in ("_changes", "_all_docs"):
        return PHASES[4], 0
    if rest == "_bulk_docs":
        return (PHASES[6] if body.get("new_edits") is False else PHASES[5]), count
    if method == "PUT":
        return (PHASES[6] if params.get("new_edits") is False else PHASES[5]), 1
    return PHASES[9], 0


class PhaseClient(CouchClient):
    """A client that adds up, per phase, the time its requests take."""

    def __init__(self, url: str, user: str, password: str) -> None:
        super().__init__(url, user, password)
        self.phases: dict[str, Phase] = {}
        self._lock = threading.Lock()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        name, docs = phase_of(method, path, kwargs.get("params"), kwargs.get("json_body"))
        started = time.perf_counter()
        try:
            return super().request(method, path, **kwargs)
        finally:
            with self._lock:
                phase = self.phases.setdefault(name, Phase())
                phase.seconds += time.perf_counter() - started
                phase.requests += 1
                phase.docs += docs


class IndexerWatch:
    """Polls ``_active_tasks`` while a run goes on, counting the polls that saw a view of the
    caseload being built: on CouchDB its background indexer (ken) updates the views after
    writes, in JavaScript like the validation, beside the run's own requests. (The embedded
    server builds views only when they are read: it lists none.)"""

    def __init__(self, admin: CouchClient, db_name: str, interval: float = 0.25) -> None:
        self.admin, self.db_name, self.interval = admin, db_name, interval
        self.polls = self.busy = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> IndexerWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                tasks = self.admin.json("GET", "_active_tasks")
            except CarecouchError:
                return
            self.polls += 1
            self.busy += any(t.get("type") == "indexer" and self.db_name in
                             str(t.get("database", "")) for t in tasks if isinstance(t, dict))


@dataclass
class Run:
    seconds: float
    resolved: int
    phases: dict[str, Phase] = field(default_factory=dict)
    indexing: tuple[int, int] = (0, 0)  # polls of _active_tasks that saw the indexer, polls

    @property
    def requests(self) -> int:
        return sum(p.requests for p in self.phases.values())

    def breakdown(self) -> dict[str, Phase]:
        client = self.seconds - sum(p.seconds for p in self.phases.values())
        return {**{n: self.phases[n] for n in PHASES if n in self.phases},
                CLIENT: Phase(client)}


def batched(client: PhaseClient, caseload: str) -> int:
    registry = load_registry()
    resolver = current_resolver(client)
    planned = plan_caseloads(client, [caseload], registry, resolver=resolver, now=utc_now())
    outcomes = apply_plans(client, caseload, planned.plans, audit=AuditSink(client, "bench"))
    return sum(1 for o in outcomes if o.status == OutcomeStatus.RESOLVED)


def one_at_a_time(client: PhaseClient, caseload: str) -> int:
    registry = load_registry()
    db = client.db(caseload_db(caseload))
    audit = AuditLog(client, "bench")
    resolver = current_resolver(client)
    now = utc_now()
    resolved = 0
    for row in conflict_rows(db, caseload):
        conflict = read_conflict(db, caseload, row.doc_id, registry, attachments=True)
        plan: Plan | None = plan_auto(conflict, registry, resolver=resolver, now=now)
        if plan is None:
            continue
        db.put(plan.record)
        for doc in plan.writes:
            client.request("PUT", f"{db.path}/{doc_path(doc['_id'])}", json_body=doc,
                           params={"new_edits": False})
        audit.record("conflict.resolve", caseload,
                     {"doc": plan.doc_id, "resolution": plan.resolution_id})
        resolved += 1
    return resolved


def timed(url: str, user: str, password: str, admin: CouchClient, caseload: str,
          resolve: Callable[[PhaseClient, str], int]) -> Run:
    with PhaseClient(url, user, password) as client, \
            IndexerWatch(admin, caseload_db(caseload)) as watch:
        started = time.perf_counter()
        resolved = resolve(client, caseload)
        elapsed = time.perf_counter() - started
    return Run(elapsed, resolved, dict(client.phases), (watch.busy, watch.polls))


def one_round(url: str, user: str, password: str, admin: CouchClient, count: int,
              reverse: bool) -> dict[str, Run]:
    with bench_caseloads(url, admin, 3) as (ids, a, b):
        cases = {BATCHED: ids[0], NO_VDU: ids[1], SERIAL: ids[2]}
        provision(admin, [cases[NO_VDU]], design=with_validation(None))
        setup = time.perf_counter()
        for cid in ids:
            make_conflicts(a, b, cid, count)
        for cid in ids:  # a running server keeps its views built (CouchDB: ken)
            conflict_rows(admin.db(caseload_db(cid)), cid)
        print(f"set-up: {3 * count} conflicts pushed and the conflicts views built in "
              f"{time.perf_counter() - setup:.1f} s; runs in the order "
              f"{'serial first' if reverse else 'batched first'}")
        AuditLog(admin, "bench").ensure()
        ways = {BATCHED: batched, NO_VDU: batched, SERIAL: one_at_a_time}
        order = list(reversed(ways)) if reverse else list(ways)
        runs = {name: timed(url, user, password, admin, cases[name], ways[name])
                for name in order}
        for name in order:
            run = runs[name]
            print(f"  {name:32} {run.seconds:7.2f} s  {run.resolved} resolved  "
                  f"{run.requests} requests; a view being built in {run.indexing[0]} of "
                  f"{run.indexing[1]} polls of _active_tasks")
        for cid in ids:
            left = conflict_rows(admin.db(caseload_db(cid)), cid)
            if left:
                raise SystemExit(f"{len(left)} conflicts left in {cid}")
    return {name: runs[name] for name in ways}


def warm_up(url: str, user: str, password: str, admin: CouchClient) -> None:
    """Not timed: both ways once on a few conflicts, so that the first run measured does not
    pay alone for a server that has just started (the embedded server's JIT, caches)."""
    with bench_caseloads(url, admin, 2) as (ids, a, b):
        for cid in ids:
            make_conflicts(a, b, cid, WARM_UP)
        AuditLog(admin, "bench").ensure()
        for cid, resolve in zip(ids, (batched, one_at_a_time), strict=True):
            if timed(url, user, password, admin, cid, resolve).resolved != WARM_UP:
                raise SystemExit("warm-up: not every conflict was resolved")


def report(rounds: list[dict[str, Run]], count: int) -> None:
    print(f"\n{len(rounds)} rounds, {count} conflicts a run; median (min-max) over the rounds")
    for name in (BATCHED, NO_VDU, SERIAL):
        runs = [r[name] for r in rounds]
        if any(run.resolved != count for run in runs):
            raise SystemExit(f"{name}: resolved {[run.resolved for run in runs]} of {count}")
        per_request = statistics.median(run.requests for run in runs) / count
        print(f"{name}: {spread([run.seconds for run in runs])}, "
              f"{spread([count / run.seconds for run in runs], 0, ' conflicts/s')}, "
              f"{runs[0].requests} requests ({per_request:.2f} a conflict, one after another)")
        for phase in (*PHASES, CLIENT):
            parts = [run.breakdown()[phase] for run in runs if phase in run.breakdown()]
            if not parts:
                continue
            seconds = [p.seconds for p in parts]
            share = statistics.median(p.seconds / run.seconds
                                      for p, run in zip(parts, runs, strict=True))
            line = f"  {phase:44} {spread(seconds):>22} {share:4.0%}"
            if parts[0].requests:
                line += f"  {parts[0].requests:5} requests"
            if parts[0].docs:
                docs = parts[0].docs
                line += f"  {docs:5} docs  {statistics.median(seconds) / docs * 1000:6.2f} ms/doc"
            print(line)
    ratio = [r[SERIAL].seconds / r[BATCHED].seconds for r in rounds]
    validation = [1 - r[NO_VDU].seconds / r[BATCHED].seconds for r in rounds]
    print(f"speed-up of batched over one at a time: x{spread(ratio, 1, '')}")
    print(f"validate_doc_update's share of the batched run (1 - no validate_doc_update / "
          f"batched): {spread([100 * v for v in validation], 0, '%')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with couch_server() as (url, user, password, where):
        admin = CouchClient(url, user, password)
        print(f"server: {where}; {args.count} mergeable conflicts per caseload, resolved as "
              f"{user} (server admin: the audit entries are written)")
        print(f"  {BATCHED} and {NO_VDU}: `conflicts auto`'s code path (leaves read "
              f"{BRANCH_BATCH} documents a request, written {APPLY_BATCH} a request)")
        print(f"  {SERIAL}: per conflict, GET ?open_revs=all, PUT the resolution record, PUT "
              "the merged revision and the tombstone (new_edits=false), POST the audit entry")
        print("  each caseload provisioned as `carecouch caseload create` does; the second "
              "one's design document has no validate_doc_update; the same plans in all three")
        warm_up(url, user, password, admin)
        print(f"warm-up (not timed): {WARM_UP} conflicts resolved each way")
        rounds = [one_round(url, user, password, admin, args.count, reverse=n % 2 == 1)
                  for n in range(args.rounds)]
        admin.close()
    report(rounds, args.count)


if __name__ == "__main__":
    main()
