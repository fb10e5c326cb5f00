"""Benchmark: credential issuance through the bridge, beside raw ``_users`` writes.

Run on demand (not part of the test suite):

    .venv/bin/python benchmarks/credential_issuance.py [--devices 8] [--rounds 10]

Uses the server named by COUCHDB_URL / COUCHDB_USER / COUCHDB_PASSWORD, or starts an embedded
one (as the test harness does). Starts a real bridge on a free port (Werkzeug, threaded), enrols
``--devices`` devices and has them all ask for credentials at once, ``--rounds`` times each
(every issuance after the first rotates the device's credential). The peer, in the same run on
the same server with the same concurrency: the raw cost of creating a ``_users`` document (one
PUT with a password, which CouchDB hashes). Prints mean, p50 and p95 of each and their ratio,
then removes everything it created except audit entries (the trail is append-only).
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
from bridge_support import bench_bridge
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support import couch_server

from carecouch.ids import user_doc_id
from carecouch.signing import b64url, raw_public, request_headers


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def report(label: str, latencies: list[float], wall: float) -> tuple[float, float]:
    mean, p95 = statistics.fmean(latencies), percentile(latencies, 95)
    print(f"  {label:<34} n={len(latencies):<4} mean {mean * 1000:7.1f} ms   "
          f"p50 {percentile(latencies, 50) * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms   "
          f"{len(latencies) / wall:6.1f}/s")
    return mean, p95


def concurrently(devices: int, rounds: int, work: Callable[[int, int], None]) -> tuple[
        list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()

    def run(device: int) -> None:
        for n in range(rounds):
            started = time.perf_counter()
            work(device, n)
            with lock:
                latencies.append(time.perf_counter() - started)

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=devices) as pool:
        for future in [pool.submit(run, d) for d in range(devices)]:
            future.result()
    return latencies, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with couch_server() as (url, user, password, description), \
            bench_bridge(url, user, password) as bench:
        print(f"credential issuance on {description}: {args.devices} concurrent devices x "
              f"{args.rounds} rounds")
        http = httpx.Client(base_url=bench.base, timeout=120,
                            limits=httpx.Limits(max_connections=args.devices * 2))
        keys = [Ed25519PrivateKey.generate() for _ in range(args.devices)]
        ids = [f"bench{bench.run}-dev{n}" for n in range(args.devices)]
        tokens = [bench.token(f"u{n}") for n in range(args.devices)]

        def signed(n: int, path: str, body: bytes) -> httpx.Response:
            headers = {"Authorization": f"Bearer {tokens[n]}",
                       "Content-Type": "application/json",
                       **request_headers(keys[n], ids[n], "POST", path, body)}
            return http.post(path, content=body, headers=headers)

        try:
            for n in range(args.devices):
                body = json.dumps({"device": ids[n], "public_key": b64url(
                    raw_public(keys[n].public_key()))}).encode()
                assert signed(n, "/v1/devices", body).status_code == 201

            def issue(device: int, _: int) -> None:
                response = signed(device, "/v1/credentials", b"{}")
                assert response.status_code == 201, response.text

            users = bench.admin.db("_users")

            def raw(device: int, n: int) -> None:
                name = f"bench{bench.run}-raw-{device}-{n}"
                users.put({"_id": user_doc_id(name), "name": name, "type": "user",
                           "roles": [f"caseload:{c}" for c in bench.caseloads]
                           + ["clinical:nurse"],
                           "password": secrets.token_urlsafe(32)})

            raw_latencies, raw_wall = concurrently(args.devices, args.rounds, raw)
            bridge_latencies, bridge_wall = concurrently(args.devices, args.rounds, issue)
            raw_mean, raw_p95 = report("raw _users document PUT (peer)", raw_latencies,
                                       raw_wall)
            mean, p95 = report("POST /v1/credentials (bridge)", bridge_latencies, bridge_wall)
            print(f"  ratio bridge/raw: mean {mean / raw_mean:.1f}x, p95 {p95 / raw_p95:.1f}x "
                  "(each issuance: JWT + signature checks, nonce, device, revocation and "
                  "registry reads, the _users write, audit entries)")
        finally:
            http.close()


if __name__ == "__main__":
    main()
