"""Benchmark: a fleet's sync reports through the bridge, beside raw ``_bulk_docs`` of the same
documents, then the time of ``carecouch fleet summary`` and of the dashboard page.

Run on demand (not part of the test suite):

    .venv/bin/python benchmarks/fleet_reports.py [--devices 2000] [--days 14] [--syncs 10]

The fleet: ``--devices`` enrolled devices over 20 caseloads, each with ``--days`` days of
``--syncs`` syncs a day (the issue's figure: 2,000 x 14 x 10 = 280,000 reports), 94% ok, 3%
with a refused write, 3% stopped, durations log-normal around 2 s. Each device sends its
reports as the reference device does: ``POST /v1/reports``, signed, 50 a request, 8 devices at
a time. The peer, in the same run on the same server with the same batches and concurrency:
``_bulk_docs`` of exactly the documents the bridge stored, into databases of their own. Then
``carecouch fleet summary`` over the whole window (the first run builds the views, the second
reads them) and ``GET /dashboard`` as a policy admin.

Runs on its own embedded server (as the test harness starts one), since it fills the fleet
databases; with COUCHDB_URL it refuses a server that already holds fleet reports.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
from bridge_support import AUDIENCE, ISSUER, bench_bridge
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support import couch_server

from admin_cli.main import cli
from carecouch.clock import format_utc
from carecouch.couch import CouchClient, Doc
from carecouch.fleet import DAY_PREFIX, FleetStore, check_report, day_db
from carecouch.provisioning import Provisioner
from carecouch.registry import REGISTRY_DB
from carecouch.signing import b64url, raw_public, request_headers

BATCH = 50
WORKERS = 8
CASELOADS = 20


def reports_of(device: int, caseloads: list[str], days: int, syncs: int,
               now: datetime) -> Iterator[dict[str, Any]]:
    rnd = random.Random(device)
    caseload = caseloads[device % len(caseloads)]
    for day in range(days):
        start = (now - timedelta(days=days - day)).replace(hour=7, minute=0, second=0)
        for n in range(syncs):
            began = start + timedelta(minutes=n * 70 + rnd.randint(0, 30))
            took = min(600_000, int(rnd.lognormvariate(7.6, 0.8)))  # ms, ~2 s typical
            roll = rnd.random()
            state = "unreachable" if roll < 0.03 else "ok"
            refused = {"auth.type_not_granted": 1} if 0.03 <= roll < 0.06 else {}
            yield {"id": uuid.uuid4().hex, "database": f"caseload_{caseload}",
                   "started_at": format_utc(began),
                   "ended_at": format_utc(began + timedelta(milliseconds=took)),
                   "state": state, "pulled": rnd.randint(0, 40), "pushed": rnd.randint(0, 6),
                   "refused": refused, "retries": 0, "conflicts": 0,
                   "pending": rnd.randint(0, 3) if state != "ok" else 0,
                   "refused_open": len(refused), "store_bytes": 40_000_000 + device,
                   "clock_offset_ms": rnd.randint(-900, 900),
                   "credential_expires_at": format_utc(began + timedelta(hours=8)),
                   "offline_until": format_utc(began + timedelta(days=3)),
                   "app_version": "0.1.0"}


def concurrently(jobs: list[Callable[[], int]]) -> tuple[int, float, list[float]]:
    """Run ``jobs`` ``WORKERS`` at a time; (items done, wall seconds, per-job latencies)."""
    latencies: list[float] = []
    done = 0
    lock = threading.Lock()

    def run(job: Callable[[], int]) -> None:
        nonlocal done
        began = time.perf_counter()
        count = job()
        with lock:
            latencies.append(time.perf_counter() - began)
            done += count

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for future in [pool.submit(run, job) for job in jobs]:
            future.result()
    return done, time.perf_counter() - started, latencies


def enrol(admin: CouchClient, run: str, devices: int) -> list[tuple[str, Ed25519PrivateKey]]:
    """Registry records written directly (enrolment is not what is measured)."""
    keys = [(f"bench{run}-dev{n:05d}", Ed25519PrivateKey.generate()) for n in range(devices)]
    registry = admin.db(REGISTRY_DB)
    for first in range(0, devices, 500):
        registry.bulk_docs([{"_id": f"device:{d}", "type": "device", "id": d,
                             "public_key": b64url(raw_public(k.public_key())),
                             "label": f"tablet {d[-5:]}", "status": "active",
                             "enrolled_by": f"bench{run}-nurse{n}", "holder": f"bench{run}-"
                             f"nurse{n}", "enrolled_at": format_utc(datetime.now(UTC) -
                                                                    timedelta(days=30))}
                            for n, (d, k) in enumerate(keys[first:first + 500], first)])
    return keys


def figures(label: str, done: int, wall: float, latencies: list[float]) -> float:
    rate = done / wall
    print(f"  {label:<44} {done:>8} reports in {wall:7.1f} s = {rate:8.0f}/s   request p50 "
          f"{statistics.median(latencies) * 1000:6.0f} ms  p95 "
          f"{sorted(latencies)[int(0.95 * (len(latencies) - 1))] * 1000:6.0f} ms")
    return rate


def timed(what: Callable[[], Any]) -> tuple[Any, float]:
    began = time.perf_counter()
    result = what()
    return result, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--syncs", type=int, default=10)
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    with couch_server() as (url, user, password, description), \
            bench_bridge(url, user, password) as bench:
        admin = bench.admin
        if any(n.startswith(DAY_PREFIX) for n in admin.all_dbs()):
            raise SystemExit("this server already holds fleet reports: run the benchmark on "
                             "its own server (leave COUCHDB_URL unset)")
        caseloads = [f"bench{bench.run}-c{n:02d}" for n in range(CASELOADS)]
        for caseload in caseloads:
            Provisioner(admin).create(caseload, team=f"bench-{bench.run}")
        try:
            run_benchmark(args, bench, caseloads, url, user, password, description, now)
        finally:
            for caseload in caseloads:
                Provisioner(admin).destroy(caseload)


def run_benchmark(args: argparse.Namespace, bench: Any, caseloads: list[str], url: str,
                  user: str, password: str, description: str, now: datetime) -> None:
    admin = bench.admin
    total = args.devices * args.days * args.syncs
    print(f"fleet reports on {description}: {args.devices} devices x {args.days} days x "
          f"{args.syncs} syncs = {total} reports, {BATCH} a request, {WORKERS} at a time")
    keys = enrol(admin, bench.run, args.devices)
    http = httpx.Client(base_url=bench.base, timeout=300,
                        limits=httpx.Limits(max_connections=WORKERS * 2))
    stored: list[Doc] = []
    stored_lock = threading.Lock()

    def send(device: str, key: Ed25519PrivateKey, batch: list[dict[str, Any]]) -> int:
        body = json.dumps({"reports": batch}).encode()
        headers = {"Content-Type": "application/json",
                   **request_headers(key, device, "POST", "/v1/reports", body)}
        answer = http.post("/v1/reports", content=body, headers=headers)
        answer.raise_for_status()
        assert len(answer.json()["stored"]) == len(batch), answer.text
        received = format_utc(datetime.now(UTC))
        docs = [{**check_report(r), "_id": f"report:{device}:{r['id']}", "device": device,
                 "user": None, "received_at": received} for r in batch]
        with stored_lock:
            stored.extend(docs)
        return len(batch)

    jobs: list[Callable[[], int]] = []
    for n, (device, key) in enumerate(keys):
        mine = list(reports_of(n, caseloads, args.days, args.syncs, now))
        for first in range(0, len(mine), BATCH):
            batch = mine[first:first + BATCH]
            jobs.append(lambda d=device, k=key, b=batch: send(d, k, b))
    random.Random(1).shuffle(jobs)  # devices interleave, as a fleet's do
    bridge_rate = figures("bridge: POST /v1/reports (signed)", *concurrently(jobs))

    raw = CouchClient(url, user, password, max_connections=WORKERS * 2)
    by_day: dict[str, list[Doc]] = {}
    for doc in stored:
        by_day.setdefault(day_db(datetime.fromisoformat(doc["started_at"])), []).append(doc)
    for name in by_day:
        raw.db(f"bench{bench.run}_raw_{name[len(DAY_PREFIX):]}").create()
    raw_jobs: list[Callable[[], int]] = []
    for name, docs in by_day.items():
        db = raw.db(f"bench{bench.run}_raw_{name[len(DAY_PREFIX):]}")
        for first in range(0, len(docs), BATCH):
            batch = docs[first:first + BATCH]
            raw_jobs.append(lambda db=db, b=batch: len(db.bulk_docs(b)))
    random.Random(2).shuffle(raw_jobs)
    raw_rate = figures("raw _bulk_docs of the same documents", *concurrently(raw_jobs))
    print(f"  the bridge ingests at {bridge_rate / raw_rate:.0%} of the raw rate "
          "(signature, nonce claim, registry read, checks, device status per request)")

    os.environ.update({"COUCHDB_URL": url, "COUCHDB_USER": user,
                       "COUCHDB_PASSWORD": password})
    since = (now - timedelta(days=args.days)).strftime("%Y-%m-%dT%H:%M:%SZ")
    runner = CliRunner()
    command = ["fleet", "summary", "--since", since]
    for label in ("cold: builds the views", "warm"):
        result, seconds = timed(lambda: runner.invoke(cli, command, catch_exceptions=False))
        assert result.exit_code == 0, result.output
        print(f"  carecouch fleet summary, {args.days} days ({label}){'':<8} {seconds:7.2f} s")
    print("    " + "\n    ".join(result.stdout.splitlines()[-3:]))
    _, seconds = timed(lambda: runner.invoke(cli, ["fleet", "devices", "--json"]))
    print(f"  {f'carecouch fleet devices --json ({args.devices} devices)':<58} {seconds:7.2f} s")
    token = _admin_token(bench)
    for label in (f"{min(args.days, 14)} days", "again"):
        page, seconds = timed(lambda: http.get("/dashboard", headers={
            "Authorization": f"Bearer {token}"}))
        assert page.status_code == 200, page.text[:300]
        print(f"  {f'GET /dashboard as a policy admin ({label})':<58} {seconds:7.2f} s "
              f"({len(page.content) // 1024} KiB)")
    count = sum(admin.db(n).info()["doc_count"] for n in FleetStore(admin).day_names())
    print(f"  stored: {count} documents in {len(by_day)} day databases")
    for name in FleetStore(admin).day_names():
        admin.db(name).destroy(missing_ok=True)
    for name in by_day:
        raw.db(f"bench{bench.run}_raw_{name[len(DAY_PREFIX):]}").destroy(missing_ok=True)
    raw.close()
    http.close()


def _admin_token(bench: Any) -> str:
    policy = bench.app.extensions["carecouch"].settings.policy_file
    policy.write_text(policy.read_text() + "admins:\n  groups: [bench-it]\n")
    os.utime(policy, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    stamp = int(time.time())
    return jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": f"bench{bench.run}-it",
                       "groups": ["bench-it"], "iat": stamp, "exp": stamp + 3600}, bench.idp,
                      algorithm="EdDSA")


if __name__ == "__main__":
    main()
