"""Benchmark: provision N caseloads from a manifest, then re-run it (which must write nothing).

Run on demand (not part of the test suite):

    .venv/bin/python benchmarks/provision_caseloads.py [--count 200] [--workers 8]

Uses the server named by COUCHDB_URL / COUCHDB_USER / COUCHDB_PASSWORD, or starts an embedded
one in a temporary directory (as the test harness does). Prints the time and the requests of
the first run and of the idempotent re-run, next to the same run with one worker (the serial
peer), then deletes the caseload databases and registry records it made. Audit entries stay:
the audit trail is append-only.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from support import couch_server

from carecouch.couch import CouchClient
from carecouch.ids import caseload_db, registry_doc_id
from carecouch.manifest import CaseloadSpec, load_manifest
from carecouch.provisioning import Provisioner
from carecouch.registry import REGISTRY_DB


def write_manifest(path: Path, ids: list[str]) -> None:
    teams = ["district-nursing", "mobile-clinic", "community-mental-health", "palliative-care"]
    lines = ["id,name,team"] + [f"{cid},Bench caseload {n},{teams[n % len(teams)]}"
                                for n, cid in enumerate(ids)]
    path.write_text("\n".join(lines) + "\n")


def timed(label: str, client: CouchClient, run: Callable[[], Any]) -> tuple[float, str]:
    client.request_counts.clear()
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    requests = ", ".join(f"{m} {n}" for m, n in sorted(client.request_counts.items()))
    print(f"  {label:<34} {elapsed:7.2f} s   requests: {requests}")
    return elapsed, requests


def bench(client: CouchClient, specs: list[CaseloadSpec], workers: int, title: str) -> None:
    print(f"{title} ({len(specs)} caseloads, {workers} worker{'s' if workers > 1 else ''})")
    timed("first run (provision)", client,
          lambda: Provisioner(client, workers=workers).apply(specs))
    plans: list[Any] = []
    _, requests = timed("second run (nothing changed)", client,
                        lambda: plans.extend(Provisioner(client, workers=workers).apply(specs)))
    writes = sum(n for m, n in client.request_counts.items() if m not in ("GET", "HEAD"))
    changed = sum(1 for p in plans if p.changed)
    print(f"  second run: {changed} caseloads changed, {writes} write requests")
    if changed or writes:
        raise SystemExit("FAIL: the second run wrote something")


def cleanup(client: CouchClient, ids: list[str]) -> None:
    registry = client.db(REGISTRY_DB)
    for caseload_id in ids:
        client.db(caseload_db(caseload_id)).destroy(missing_ok=True)
        doc = registry.get_or_none(registry_doc_id(caseload_id))
        if doc is not None:
            registry.delete(doc["_id"], doc["_rev"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--no-serial", action="store_true",
                        help="skip the one-worker peer run")
    args = parser.parse_args()
    run_id = uuid.uuid4().hex[:6]
    with couch_server() as (url, user, password, where), \
            CouchClient(url, user, password) as client, \
            tempfile.TemporaryDirectory() as tmp:
        print(f"server: {where}")
        batches = [(args.workers, "parallel")] + ([] if args.no_serial else [(1, "serial peer")])
        for workers, title in batches:
            ids = [f"bench-{run_id}-{title[0]}{n:04d}" for n in range(args.count)]
            manifest = Path(tmp) / f"caseloads-{title[0]}.csv"
            write_manifest(manifest, ids)
            specs = load_manifest(manifest)
            try:
                bench(client, specs, workers, title)
            finally:
                cleanup(client, ids)


if __name__ == "__main__":
    main()
