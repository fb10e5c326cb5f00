"""Benchmark: credential issuance and the first replication request, beside raw ``_users`` writes.

Run on demand (not part of the test suite):

    .venv/bin/python benchmarks/credential_issuance.py [--devices 8] [--rounds 10]
        [--caseloads 5000] [--registered-devices 10000]

Uses the server named by COUCHDB_URL / COUCHDB_USER / COUCHDB_PASSWORD, or starts an embedded
one, which hashes `_users` passwords as CouchDB 3.5 does with deploy/couchdb.ini's settings
(PBKDF2-SHA256, 600,000 iterations: CouchDB's default; the settings are printed). Starts a
real bridge on a free port (Werkzeug, threaded), enrols ``--devices`` devices and has them all
sign in at once, ``--rounds`` times each (every round after the first rotates the device's
credential): ``POST /v1/credentials``, then the first replication request with the new
credential (the filtered changes feed of its first caseload). The peer, same run, same server,
same concurrency: a raw ``_users`` PUT with a clear password (CouchDB hashes it at its
configured cost) and the first request with that user. Then the same issuance again after
``--caseloads`` caseload records and ``--registered-devices`` device records were added to the
registry (records only: no caseload databases), to show what a login costs as the
organisation grows. Prints mean, p50 and p95, the rate, and the bridge's CouchDB requests per
issuance; removes everything it created except audit entries (the trail is append-only).
"""

from __future__ import annotations

import argparse
import secrets
import threading
import time
from typing import Any

import httpx
from bridge_support import (
    BenchBridge,
    BenchDevice,
    bench_bridge,
    concurrently,
    hashing_settings,
    summary,
)
from support import couch_server

from carecouch.couch import CouchClient
from carecouch.ids import caseload_db, user_doc_id
from carecouch.registry import REGISTRY_DB

GOAL_P95, GOAL_RATE = 0.150, 50.0
CHUNK = 1000


def fill_registry(admin: CouchClient, tag: str, caseloads: int, devices: int) -> None:
    """Registry records as provisioning and enrolment write them (no databases behind them)."""
    registry = admin.db(REGISTRY_DB)
    docs: list[dict[str, Any]] = [
        {"_id": f"caseload:{tag}-{n}", "type": "caseload", "id": f"{tag}-{n}",
         "name": f"filler {n}", "team": f"{tag}-team-{n % 250}", "db": f"caseload_{tag}-{n}",
         "status": "active", "design_docs": {}} for n in range(caseloads)]
    docs += [{"_id": f"device:{tag}-d{n}", "type": "device", "id": f"{tag}-d{n}",
              "public_key": "A" * 43, "status": "active", "enrolled_by": f"{tag}-u{n}",
              "holder": None} for n in range(devices)]
    for start in range(0, len(docs), CHUNK):
        registry.bulk_docs(docs[start:start + CHUNK])


def empty_registry(admin: CouchClient, tag: str) -> None:
    registry = admin.db(REGISTRY_DB)
    for prefix in (f"caseload:{tag}-", f"device:{tag}-"):
        rows = registry.all_docs(startkey=prefix, endkey=prefix + "\ufff0")["rows"]
        deletions = [{"_id": r["id"], "_rev": r["value"]["rev"], "_deleted": True} for r in rows]
        for start in range(0, len(deletions), CHUNK):
            registry.bulk_docs(deletions[start:start + CHUNK])


def sign_ins(bench: BenchBridge, http: httpx.Client, couch: httpx.Client,
             devices: list[BenchDevice], rounds: int, label: str) -> tuple[float, float, float]:
    """Every device signs in ``rounds`` times, all at once; prints the figures and returns
    (p95 of issuance + first request, issuances per second, CouchDB requests per issuance)."""
    issuing: list[float] = []
    first: list[float] = []
    together: list[float] = []
    lock = threading.Lock()

    def run(n: int) -> None:
        for _ in range(rounds):
            began = time.perf_counter()
            creds = devices[n].issue(http)
            issued = time.perf_counter()
            BenchDevice.first_request(couch, creds)
            done = time.perf_counter()
            with lock:
                issuing.append(issued - began)
                first.append(done - issued)
                together.append(done - began)

    before = bench.couch_requests()
    wall = concurrently(len(devices), len(devices), run)
    per_issuance = (bench.couch_requests() - before) / len(issuing)
    print(f" {label}")
    summary("POST /v1/credentials (bridge)", issuing, wall)
    summary("first replication request", first)
    _, p95 = summary("issuance + first request", together, wall)
    print(f"  bridge -> CouchDB requests per issuance: {per_issuance:.1f}")
    return p95, len(issuing) / wall, per_issuance


def raw_writes(bench: BenchBridge, couch: httpx.Client, workers: int, rounds: int) -> None:
    users = bench.admin.db("_users")
    writing: list[float] = []
    first: list[float] = []
    lock = threading.Lock()
    db_url = f"{bench.admin.url}/{caseload_db(bench.caseloads[0])}"

    def run(n: int) -> None:
        for r in range(rounds):
            name, password = f"bench{bench.run}-raw-{n}-{r}", secrets.token_urlsafe(32)
            began = time.perf_counter()
            users.put({"_id": user_doc_id(name), "name": name, "type": "user",
                       "roles": [f"caseload:{c}" for c in bench.caseloads] + ["clinical:nurse"],
                       "password": password})
            written = time.perf_counter()
            response = couch.get(f"{db_url}/_changes", params={"since": "0", "limit": "1"},
                                 auth=(name, password))
            assert response.status_code == 200, response.text
            with lock:
                writing.append(written - began)
                first.append(time.perf_counter() - written)

    wall = concurrently(workers, workers, run)
    print(" peer: raw _users PUT with a clear password (the server hashes it)")
    summary("raw _users document PUT", writing, wall)
    summary("first request as that user", first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--caseloads", type=int, default=5000)
    parser.add_argument("--registered-devices", type=int, default=10000)
    args = parser.parse_args()
    with couch_server() as (url, user, password, description), \
            bench_bridge(url, user, password) as bench:
        print(f"credential issuance on {description} ({hashing_settings(bench.admin)}): "
              f"{args.devices} concurrent devices x {args.rounds} rounds")
        limits = httpx.Limits(max_connections=args.devices * 2)
        http = httpx.Client(base_url=bench.base, timeout=120, limits=limits)
        couch = httpx.Client(timeout=120, limits=limits)
        tag = f"fill{bench.run}"
        try:
            devices = bench.enrol(http, args.devices)
            raw_writes(bench, couch, args.devices, args.rounds)
            p95, rate, _ = sign_ins(bench, http, couch, devices, args.rounds,
                                    "bridge, registry holding only the benchmark's 2 caseloads")
            began = time.perf_counter()
            fill_registry(bench.admin, tag, args.caseloads, args.registered_devices)
            print(f" (added {args.caseloads} caseload and {args.registered_devices} device "
                  f"records to the registry in {time.perf_counter() - began:.1f} s)")
            sign_ins(bench, http, couch, devices, 1, "warm-up after the registry grew")
            grown_p95, grown_rate, _ = sign_ins(
                bench, http, couch, devices, args.rounds,
                f"bridge, registry with {args.caseloads} more caseloads and "
                f"{args.registered_devices} more devices")
            print(f"  goal: p95 of issuance + first request < {GOAL_P95 * 1000:.0f} ms "
                  f"(empty registry {p95 * 1000:.0f} ms, grown {grown_p95 * 1000:.0f} ms), "
                  f">= {GOAL_RATE:.0f} issuances/s (empty {rate:.1f}, grown {grown_rate:.1f})")
        finally:
            empty_registry(bench.admin, tag)
            http.close()
            couch.close()


if __name__ == "__main__":
    main()
