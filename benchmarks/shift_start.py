"""Benchmark: a shift start, every enrolled device signing in within one window.

Run on demand (not part of the test suite):

    .venv/bin/python benchmarks/shift_start.py [--devices 2000] [--window 40] [--peer 200]

At 8 a.m. 2,000 tablets sign in within about ten minutes. Here the ten minutes are compressed
into ``--window`` seconds (default 40: 50 arrivals a second, 15 times the real rate): device n
arrives at a random moment of the window (uniform, fixed seed), then asks the bridge for
credentials and makes its first replication request with them (the filtered changes feed of
its first caseload), as carecouch-device does. Arrivals do not wait for one another (open
loop), so a bridge or server that cannot keep up shows as growing per-device latency. Uses the
server named by COUCHDB_URL / COUCHDB_USER / COUCHDB_PASSWORD, or starts an embedded one that
hashes as CouchDB 3.5 does with deploy/couchdb.ini (the settings are printed).

With ``--upgrade-hash-on-auth`` the server is set to CouchDB 3.5's default
``[chttpd_auth] upgrade_hash_on_auth = true`` for the run (restored afterwards): each device
session's first login is then followed by the server rehashing its user at the configured cost
(couch_password_hasher), which deploy/couchdb.ini turns off.

Reports the time from the window's start to the last device synced, and per device (arrival
to first request answered) mean, p50, p95 and max, with the bridge's CouchDB requests per
device. The peer, same run, same server, same arrival rate: ``--peer`` devices whose users are
written with a clear password (the server hashes it at its configured cost) and make the same
first request: what a sign-in costs when CouchDB hashes.
"""

from __future__ import annotations

import argparse
import random
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from bridge_support import BenchBridge, BenchDevice, bench_bridge, hashing_settings, summary
from support import couch_server

from carecouch.ids import caseload_db, user_doc_id

WORKERS = 96  # devices in flight at most; far above what the arrival rate needs when all is well


def arrivals(count: int, window: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return sorted(rng.uniform(0, window) for _ in range(count))


def shift(count: int, window: float, seed: int,
          sign_in: Callable[[int], None]) -> tuple[list[float], float]:
    """Run ``sign_in(n)`` for each device at its arrival time; per-device latencies (from
    arrival) and the time from the window's start to the last one done."""
    times = arrivals(count, window, seed)
    latencies: list[float] = [0.0] * count
    finished: list[float] = [0.0] * count
    start = time.perf_counter() + 0.5

    def device(n: int) -> None:
        delay = start + times[n] - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        sign_in(n)
        done = time.perf_counter()
        latencies[n] = done - (start + times[n])
        finished[n] = done - start

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        for future in [pool.submit(device, n) for n in range(count)]:
            future.result()
    return latencies, max(finished)


def report(label: str, latencies: list[float], last: float, window: float) -> None:
    print(f" {label}")
    summary("per device: arrival -> first request answered", latencies)
    print(f"  {'slowest device':<44} {max(latencies) * 1000:7.1f} ms")
    print(f"  {'last device synced':<44} {last:7.1f} s after the window opened "
          f"({last - window:+.1f} s past its end)")


def bridge_shift(bench: BenchBridge, http: httpx.Client, couch: httpx.Client,
                 devices: list[BenchDevice], window: float) -> None:
    def sign_in(n: int) -> None:
        BenchDevice.first_request(couch, devices[n].issue(http))

    before = bench.couch_requests()
    latencies, last = shift(len(devices), window, 16, sign_in)
    report(f"bridge: {len(devices)} devices sign in within {window:.0f} s "
           f"({len(devices) / window:.0f} arrivals/s)", latencies, last, window)
    print(f"  bridge -> CouchDB requests per device: "
          f"{(bench.couch_requests() - before) / len(devices):.1f}")


def peer_shift(bench: BenchBridge, couch: httpx.Client, count: int, rate: float) -> None:
    users = bench.admin.db("_users")
    db_url = f"{bench.admin.url}/{caseload_db(bench.caseloads[0])}"

    def sign_in(n: int) -> None:
        name, password = f"bench{bench.run}-peer-{n}", secrets.token_urlsafe(32)
        users.put({"_id": user_doc_id(name), "name": name, "type": "user",
                   "roles": [f"caseload:{c}" for c in bench.caseloads] + ["clinical:nurse"],
                   "password": password})
        response = couch.get(f"{db_url}/_changes", params={"since": "0", "limit": "1"},
                             auth=(name, password))
        assert response.status_code == 200, response.text

    window = count / rate
    latencies, last = shift(count, window, 61, sign_in)
    report(f"peer: {count} users written with a clear password, same arrival rate "
           f"({rate:.0f}/s)", latencies, last, window)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2000)
    parser.add_argument("--window", type=float, default=40.0,
                        help="seconds that stand for the shift start's ten minutes")
    parser.add_argument("--peer", type=int, default=200,
                        help="users in the peer run (0: none)")
    parser.add_argument("--upgrade-hash-on-auth", action="store_true",
                        help="run with CouchDB 3.5's default upgrade_hash_on_auth = true")
    args = parser.parse_args()
    with couch_server() as (url, user, password, description), \
            bench_bridge(url, user, password) as bench:
        print(f"shift start on {description} ({hashing_settings(bench.admin)}): "
              f"{args.devices} devices, ten minutes compressed into {args.window:.0f} s")
        limits = httpx.Limits(max_connections=WORKERS * 2)
        http = httpx.Client(base_url=bench.base, timeout=300, limits=limits)
        couch = httpx.Client(timeout=300, limits=limits)
        setting = "_node/_local/_config/chttpd_auth/upgrade_hash_on_auth"
        before = bench.admin.request("GET", setting, ok=(404,))
        if args.upgrade_hash_on_auth:
            bench.admin.request("PUT", setting, json_body="true")
            print(" (upgrade_hash_on_auth set to true for this run)")
        try:
            began = time.perf_counter()
            devices = bench.enrol(http, args.devices, lifetime=7200)
            print(f" ({args.devices} devices enrolled in {time.perf_counter() - began:.0f} s)")
            bridge_shift(bench, http, couch, devices, args.window)
            if args.peer:
                peer_shift(bench, couch, args.peer, args.devices / args.window)
        finally:
            if args.upgrade_hash_on_auth:
                if before.status_code == 200:
                    bench.admin.request("PUT", setting, json_body=before.json())
                else:
                    bench.admin.request("DELETE", setting)
            http.close()
            couch.close()


if __name__ == "__main__":
    main()
