"""Shared by the replication benchmarks: a server, a caseload-sized database, fresh device
stores, and the PouchDB peer (``replication_pouchdb.js``)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from carecouch import embedded  # noqa: E402
from carecouch.couch import CouchClient, Database  # noqa: E402
from mobile_stub.credentials import StaticCredentials  # noqa: E402
from mobile_stub.crypto import KdfParams  # noqa: E402
from mobile_stub.replication import Replicator, SyncReport  # noqa: E402
from mobile_stub.replication.remote import RemoteDatabase  # noqa: E402
from mobile_stub.store import DeviceStore  # noqa: E402
from mobile_stub.store.documents import LocalDatabase  # noqa: E402

PEER = Path(__file__).resolve().parent / "replication_pouchdb.js"


@dataclass(frozen=True)
class BenchServer:
    url: str
    user: str
    password: str
    description: str

    def client(self) -> CouchClient:
        return CouchClient(self.url, self.user, self.password)


@contextmanager
def bench_server() -> Iterator[BenchServer]:
    """``COUCHDB_URL`` (with its admin), or an embedded server started as the tests do."""
    url = os.environ.get("COUCHDB_URL")
    if url:
        yield BenchServer(url.rstrip("/"), os.environ["COUCHDB_USER"],
                          os.environ["COUCHDB_PASSWORD"], url)
        return
    with tempfile.TemporaryDirectory() as data_dir:
        password = secrets.token_urlsafe(16)
        state = embedded.start(Path(data_dir), 0, "admin", password)
        try:
            yield BenchServer(state.url, "admin", password, f"embedded server {state.url}")
        finally:
            embedded.stop(Path(data_dir))


def record(i: int) -> dict[str, Any]:
    """A clinical record of about 300 bytes, as a device writes them."""
    return {"_id": f"observation:{uuid.uuid4().hex}", "type": "observation",
            "subject": f"patient:{uuid.uuid4().hex[:12]}", "author": "nurse.jones",
            "device": uuid.uuid4().hex, "at": "2026-11-22T09:14:03.123456Z",
            "clock_offset_ms": -412, "value": {"code": "8867-4", "pulse": 60 + i % 40},
            "note": f"routine visit {i}, no concerns raised"}


def fill(db: Database, count: int, batch: int = 1000) -> None:
    db.create()
    for start in range(0, count, batch):
        db.bulk_docs([record(i) for i in range(start, min(count, start + batch))])


def new_store(directory: Path, db: Database, server_url: str) -> DeviceStore:
    """A fresh store (the KDF is not what is measured: a cheap one)."""
    store = DeviceStore.create(directory / f"{uuid.uuid4().hex}.sqlite",
                               "benchmark store passphrase",
                               kdf=KdfParams.new(memory_kib=8 * 1024, iterations=1))
    store.add_database(db.name, server_url)
    return store


class CountingReplicator(Replicator):
    """The device's replicator; after each sync, ``requests`` holds what that sync sent to
    the server, by method (the PouchDB peer reports its own the same way)."""

    requests: Counter[str]

    def sync(self, database: str, *, pull: bool = True, push: bool = True) -> SyncReport:
        self.requests = Counter()
        self._remotes: list[RemoteDatabase] = []
        report = super().sync(database, pull=pull, push=push)
        for remote in self._remotes:
            # A benchmark's look inside: the remote's clients count what they sent.
            for client in remote._clients:
                self.requests.update(client.request_counts)
        return report

    def remote_for(self, local: LocalDatabase) -> RemoteDatabase:
        remote = super().remote_for(local)
        self._remotes.append(remote)
        return remote


def replicator(store: DeviceStore, server: BenchServer) -> CountingReplicator:
    return CountingReplicator(store, StaticCredentials(server.user, server.password))


def by_method(requests: dict[str, int]) -> str:
    """``GET 3, POST 12`` from counts keyed by method or by ``METHOD endpoint``."""
    methods: Counter[str] = Counter()
    for key, count in requests.items():
        methods[key.split(" ")[0]] += count
    return ", ".join(f"{method} {count}" for method, count in sorted(methods.items())) or "none"


def pouchdb(server: BenchServer, db: Database, local: Path, mode: str, *,
            docs: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    """Run the PouchDB peer; returns its JSON answer (``seconds`` as timed inside Node).

    ``docs`` (mode ``edit``): the documents to write into the local database, handed over in
    a file (a thousand records are more than one command-line argument may hold)."""
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not on PATH")
    args = {"pouchdb": str(embedded.project_root() / "node_modules" / "pouchdb"),
            "local": str(local), "remote": f"{server.url}/{db.name}",
            "username": server.user, "password": server.password, "mode": mode, **extra}
    with tempfile.NamedTemporaryFile("w", suffix=".json") as docs_file:
        if docs is not None:
            json.dump(docs, docs_file)
            docs_file.flush()
            args["docs_file"] = docs_file.name
        done = subprocess.run([node, str(PEER), json.dumps(args)], capture_output=True,
                              text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(done.stderr.strip())
    result: dict[str, Any] = json.loads(done.stdout)
    return result
