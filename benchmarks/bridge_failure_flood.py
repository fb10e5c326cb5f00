"""Benchmark: a flood of unknown-device requests, with and without the failure budget.

Run on demand (not part of the test suite):

    .venv/bin/python benchmarks/bridge_failure_flood.py [--seconds 5] [--flooders 2]

Uses the server named by COUCHDB_URL / COUCHDB_USER / COUCHDB_PASSWORD, or starts an embedded
one. Starts a real bridge twice in the same run: first with the failure budget out of reach
(the peer: the bridge as it was before it had one), then with the default
``CARECOUCH_BRIDGE_FAILURE_LIMIT``. Each time, ``--flooders`` processes send signed requests
naming random (unknown) device ids from 127.0.0.1 for ``--seconds``; the bridge's CouchDB
requests are counted per flood request. Then the flood runs again while two good clients
(each its own process) call ``GET /v1/policy`` with a valid token, one from another address
(127.0.0.2) and one from the flood's own address (a device behind the attacker's NAT). The
good client alone, before any flood, is the baseline.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:  # multiprocessing.Queue is generic only to the type checker
    Results: TypeAlias = multiprocessing.Queue[tuple[str, dict[int, int]]]

import httpx
from bridge_support import bench_bridge
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support import couch_server

from carecouch.signing import request_headers


def flood(base: str, token: str, seconds: float, results: Results) -> None:
    """Signed requests from devices nobody enrolled, as fast as answers come."""
    key, answers = Ed25519PrivateKey.generate(), Counter[int]()
    with httpx.Client(base_url=base, timeout=60) as http:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                       **request_headers(key, f"flood-{uuid.uuid4().hex}", "POST",
                                         "/v1/credentials", b"{}")}
            answers[http.post("/v1/credentials", content=b"{}", headers=headers).status_code] += 1
    results.put(("flood", dict(answers)))


def good(label: str, base: str, address: str, token: str, seconds: float,
         results: Results) -> None:
    answers = Counter[int]()
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=base, timeout=60, transport=transport) as http:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            response = http.get("/v1/policy", headers={"Authorization": f"Bearer {token}"})
            answers[response.status_code] += 1
    results.put((label, dict(answers)))


def run_phase(workers: list[tuple[Callable[..., None], tuple[Any, ...]]]
              ) -> dict[str, Counter[int]]:
    results: Results = multiprocessing.Queue()
    processes = [multiprocessing.Process(target=target, args=(*args, results))
                 for target, args in workers]
    for process in processes:
        process.start()
    merged: dict[str, Counter[int]] = {}
    for _ in processes:
        label, answers = results.get()
        merged.setdefault(label, Counter()).update(answers)
    for process in processes:
        process.join()
    return merged


def describe(answers: Counter[int], seconds: float) -> str:
    total = sum(answers.values())
    statuses = ", ".join(f"{status}: {n}" for status, n in sorted(answers.items()))
    return f"{total / seconds:7.1f} requests/s ({statuses})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--flooders", type=int, default=2)
    args = parser.parse_args()
    seconds = args.seconds
    with couch_server() as (url, user, password, description):
        print(f"unknown-device flood on {description}: {args.flooders} flooding processes, "
              f"{seconds:g} s per phase")
        for label, limit in (("no failure budget (peer: as before)", "999999/1"),
                             ("failure budget 600/600 (default)", "600/600")):
            with bench_bridge(url, user, password,
                              CARECOUCH_BRIDGE_FAILURE_LIMIT=limit) as bench:
                print(f"  {label}")
                token = bench.token("clinician")
                alone = run_phase([(good, ("alone", bench.base, "127.0.0.2", token, seconds))])
                print(f"    good, no flood:    {describe(alone['alone'], seconds)}")
                counts = bench.app.extensions["carecouch"].admin.request_counts
                before = sum(counts.values())
                flooded = run_phase([(flood, (bench.base, token, seconds))
                                     for _ in range(args.flooders)])["flood"]
                sent = sum(flooded.values())
                couch = sum(counts.values()) - before
                print(f"    flood alone:       {describe(flooded, seconds)}; "
                      f"{couch / sent:.3f} CouchDB requests per flood request "
                      f"({couch} in all)")
                # The flood's address has spent its budget by now: measure with it exhausted.
                both = run_phase(
                    [(flood, (bench.base, token, seconds)) for _ in range(args.flooders)]
                    + [(good, ("other address", bench.base, "127.0.0.2", token, seconds)),
                       (good, ("same address", bench.base, "127.0.0.1", token, seconds))])
                print(f"    flood meanwhile:   {describe(both['flood'], seconds)}")
                print(f"    good, 127.0.0.2:   {describe(both['other address'], seconds)}")
                print(f"    good, 127.0.0.1:   {describe(both['same address'], seconds)}")


if __name__ == "__main__":
    main()
