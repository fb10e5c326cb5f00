"""Peak memory of an initial pull of a large caseload, in a child process, beside PouchDB's.

    .venv/bin/python benchmarks/replication_memory.py [--docs 100000]

The device pages the changes feed and stores each batch before reading far ahead, so its
memory must not grow with the database: target < 150 MB peak RSS for 100,000 documents. The
peer is PouchDB 9's replicator pulling the same database in Node, measured the same way
(peak RSS of the child process, from ``wait4``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from replication_support import PEER, ROOT, bench_server, fill

from carecouch import embedded

CHILD = """
import json, sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
from pathlib import Path
from replication_support import BenchServer, new_store, replicator
server = BenchServer(*json.loads(sys.argv[1]))
from carecouch.couch import CouchClient
db = CouchClient(server.url, server.user, server.password).db(sys.argv[2])
store = new_store(Path(sys.argv[3]), db, server.url)
started = time.perf_counter()
report = replicator(store, server).sync(db.name, push=False)
print(json.dumps({{"seconds": time.perf_counter() - started,
                  "docs": report.pull.docs_written, "state": report.state.value}}))
"""


def peak_rss_mb(command: list[str]) -> tuple[float, str]:
    """Run ``command``; its peak resident memory (MB, from the kernel) and its stdout."""
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen(command, stdout=out)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    if process.returncode != 0:
        raise SystemExit(f"{command[0]} failed with {process.returncode}")
    return usage.ru_maxrss / 1024, text  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    options = parser.parse_args()
    with bench_server() as server, tempfile.TemporaryDirectory() as scratch:
        admin = server.client()
        db = admin.db(f"bench_memory_{uuid.uuid4().hex[:8]}")
        print(f"server: {server.description}; filling {db.name} with {options.docs} docs ...")
        started = time.perf_counter()
        fill(db, options.docs)
        print(f"filled in {time.perf_counter() - started:.0f} s")
        try:
            ours_mb, ours_out = peak_rss_mb([
                sys.executable, "-c", CHILD.format(root=str(ROOT),
                                                   bench=str(Path(__file__).parent)),
                json.dumps([server.url, server.user, server.password, "bench"]), db.name,
                scratch])
            ours = json.loads(ours_out)
            assert ours["docs"] == options.docs, ours
            pouch_mb, pouch_out = peak_rss_mb(["node", str(PEER), json.dumps({
                "pouchdb": str(embedded.project_root() / "node_modules" / "pouchdb"),
                "local": str(Path(scratch) / "pouch"), "remote": f"{server.url}/{db.name}",
                "username": server.user, "password": server.password, "mode": "pull"})])
            pouch = json.loads(pouch_out)
        finally:
            db.destroy(missing_ok=True)
            admin.close()
    print(f"peak RSS pulling {options.docs} docs (child process, from wait4):")
    print(f"  carecouch-device   {ours_mb:6.0f} MB  in {ours['seconds']:.1f} s  (target < 150 MB)")
    print(f"  PouchDB 9          {pouch_mb:6.0f} MB  in {pouch['seconds']:.1f} s")


if __name__ == "__main__":
    main()
