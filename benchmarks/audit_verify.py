"""Benchmark: provenance — `carecouch audit verify` over many revisions, and signing on a device.

1. Fills a caseload database with N signed observations (default 100,000; one enrolled
   device's key, registered in the registry as the bridge records devices), then times
   `verify_caseload` (what `carecouch audit verify` runs per caseload) beside the same read
   with no checking (the changes feed and `_bulk_get` alone: the floor), and reports the peak
   Python memory of each (tracemalloc) — memory must not grow with the caseload.
2. Times signing one record on the device (`provenance.sign`, median over 1,000) beside
   preparing it without a signature.

    .venv/bin/python benchmarks/audit_verify.py [--count 100000]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
import uuid
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from support import couch_server

from carecouch import provenance
from carecouch.couch import CouchClient
from carecouch.ids import caseload_db
from carecouch.records import load_registry
from carecouch.registry import REGISTRY_DB, CaseloadRegistry
from carecouch.signer_keys import signer_keys
from carecouch.signing import b64url, raw_public
from carecouch.verify import Accounted, Report, _leaves, verify_caseload

DEVICE = "bench0device0000000000000000000"


def observation(i: int, key: Ed25519PrivateKey) -> dict[str, Any]:
    doc = {"_id": f"observation:nurse.bench~{DEVICE}:{uuid.uuid4()}", "type": "observation",
           "subject": f"patient-{i % 500:04d}", "author": "nurse.bench", "device": DEVICE,
           "at": "2026-11-22T09:30:00.000Z", "clock_offset_ms": -420, "respiration_rate": 18,
           "spo2": 96, "spo2_scale": 1, "on_oxygen": False, "systolic_bp": 128, "pulse": 84,
           "consciousness": "A", "temperature": 37.2, "news2": 0}
    return provenance.sign(doc, key, DEVICE)


def measured(run: Callable[[], Any]) -> tuple[float, float, Any]:
    tracemalloc.start()
    started = time.perf_counter()
    result = run()
    elapsed = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return elapsed, peak, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    args = parser.parse_args()
    key = Ed25519PrivateKey.generate()
    with couch_server() as (url, user, password, description), \
            CouchClient(url, user, password) as admin:
        print(f"server: {description}")
        caseload = f"bench{uuid.uuid4().hex[:8]}"
        db = admin.db(caseload_db(caseload))
        db.create()
        CaseloadRegistry(admin).ensure()
        admin.db(REGISTRY_DB).put({"_id": f"device:{DEVICE}", "type": "device", "id": DEVICE,
                                   "public_key": b64url(raw_public(key.public_key())),
                                   "status": "active"})
        try:
            started = time.perf_counter()
            for start in range(0, args.count, 2000):
                db.bulk_docs([observation(i, key) for i in range(start, min(args.count,
                                                                           start + 2000))])
            print(f"set-up: {args.count} signed observations written in "
                  f"{time.perf_counter() - started:.1f} s (one device key in the registry)")
            keys = signer_keys(admin)
            registry = load_registry()
            read_s, read_mb, count = measured(lambda: sum(1 for _ in _leaves(admin, caseload)))
            report = Report()
            verify_s, verify_mb, _ = measured(lambda: verify_caseload(
                admin, caseload, keys, Accounted.of([]), registry, report))
            assert report.checked == count == args.count and not report.flagged, report.counts
            print(f"read every revision, no checks (the floor): {read_s:.1f} s "
                  f"({count / read_s:,.0f}/s), peak {read_mb:.1f} MiB")
            print(f"audit verify: {verify_s:.1f} s ({count / verify_s:,.0f} revisions/s), "
                  f"peak {verify_mb:.1f} MiB; checking costs "
                  f"{(verify_s - read_s) / count * 1e6:.0f} us a revision over the read")
        finally:
            db.destroy(missing_ok=True)
            doc = admin.db(REGISTRY_DB).get_or_none(f"device:{DEVICE}")
            if doc is not None:
                admin.db(REGISTRY_DB).delete(doc["_id"], doc["_rev"])

    plain, signed = [], []
    for i in range(1000):
        doc = observation(i, key)
        del doc["signature"]
        started = time.perf_counter()
        provenance.jcs(doc)  # the unsigned baseline still serialises the record once
        plain.append(time.perf_counter() - started)
        started = time.perf_counter()
        provenance.sign(doc, key, DEVICE)
        signed.append(time.perf_counter() - started)
    print(f"signing a record on the device: median {statistics.median(signed) * 1e6:.0f} us "
          f"(serialising it alone: {statistics.median(plain) * 1e6:.0f} us)")


if __name__ == "__main__":
    main()
