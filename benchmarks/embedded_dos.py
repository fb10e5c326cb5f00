"""Benchmark: can one member's request freeze the server for everyone else? (issue 10, attack 5)

For each hostile request a member of a caseload can send, runs it while a second member sends
small requests (`GET /{db}`) back to back, and prints the slowest of those probes next to the
probe's latency on the idle server (the peer, measured in the same run), with what the hostile
request was answered and how long it took. On a server started by this run it also prints the
server's resident memory after each request (VmRSS) and its peak (VmHWM).

    .venv/bin/python benchmarks/embedded_dos.py [--chars 31] [--depth 5000] [--megabytes 50]

The requests: a catastrophic-backtracking `$regex` (`^(a+)+$` against `--chars` "a"s and a "!")
in `_find` and in a `_changes?filter=_selector` feed; a `--depth`-deep `$and` in `_find`; and a
`--megabytes` attachment through `PUT /{db}/{doc}/{att}`.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from support import Target, bench_target

from carecouch.couch import CouchClient, Timeouts
from carecouch.errors import CouchError

ROLE = "caseload:bench-dos"
ANY_STATUS = range(400, 600)


def memory(pid: int | None) -> str:
    if pid is None:
        return ""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        fields[name] = value.strip()
    return f"  server RSS {fields.get('VmRSS', '?')}, peak {fields.get('VmHWM', '?')}"


class Prober:
    """Sends `GET /{db}` back to back from its own connection while running."""

    def __init__(self, client: CouchClient, path: str) -> None:
        self.client, self.path = client, path
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                self.client.request("GET", self.path, ok=ANY_STATUS)
            except CouchError:
                self.failures += 1  # e.g. a keep-alive connection the frozen server closed
            self.latencies.append(time.perf_counter() - started)
            time.sleep(0.02)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def idle_latency(client: CouchClient, path: str) -> float:
    samples = []
    for _ in range(10):
        started = time.perf_counter()
        client.request("GET", path)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def attack(name: str, send: Callable[[], Any], probe: CouchClient, path: str,
           idle: float, pid: int | None) -> None:
    with Prober(probe, path) as prober:
        time.sleep(0.2)
        started = time.perf_counter()
        response = send()
        took = time.perf_counter() - started
        time.sleep(0.2)
    worst = max(prober.latencies) if prober.latencies else float("nan")
    body = response.text[:100].strip().replace("\n", " ")
    print(f"{name}:")
    print(f"  answered {response.status_code} in {took:6.2f} s: {body}")
    print(f"  other member's requests: slowest {worst:6.2f} s "
          f"(idle server: {idle * 1000:.1f} ms), {len(prober.latencies)} sent meanwhile"
          + (f", {prober.failures} failed" if prober.failures else ""))
    if pid is not None:
        print(memory(pid))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=31)
    parser.add_argument("--depth", type=int, default=5000)
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--allowed-megabytes", type=int, default=15,
                        help="a second attachment, under deploy/couchdb.ini's limit")
    parser.add_argument("--only", choices=["regex", "and", "attachment"], action="append",
                        help="run only these requests (repeatable)")
    args = parser.parse_args()
    with bench_target() as target:
        run(target, args)


def run(target: Target, args: argparse.Namespace) -> None:
    print(f"server: {target.description}")
    timeouts = Timeouts(connect=5.0, read=600.0)
    admin = CouchClient(target.url, target.user, target.password, timeouts=timeouts)
    db = admin.db(f"bench_dos_{uuid.uuid4().hex[:8]}")
    users = admin.db("_users")
    names = [f"bench-dos-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    password = uuid.uuid4().hex
    for name in names:
        users.put({"_id": f"org.couchdb.user:{name}", "name": name, "type": "user",
                   "roles": [ROLE], "password": password})
    attacker, other = (CouchClient(target.url, name, password, timeouts=timeouts, retries=0)
                       for name in names)
    try:
        db.create()
        db.put_security({"members": {"roles": [ROLE]}, "admins": {"roles": []}})
        db.put({"_id": "victim", "type": "obs", "note": "a" * args.chars + "!"})
        path = db.path
        idle = idle_latency(other, path)
        print(f"a second member's GET /{{db}} on the idle server: {idle * 1000:.1f} ms"
              + memory(target.pid))
        wanted = set(args.only or ["regex", "and", "attachment"])
        if "regex" in wanted:
            regex_attacks(attacker, other, path, idle, target.pid, args.chars)
        if "and" in wanted:
            deep_and_attack(attacker, other, path, idle, target.pid, args.depth)
        if "attachment" in wanted:
            attachment_attacks(attacker, other, db.name, path, idle, target.pid,
                               [args.megabytes, args.allowed_megabytes])
    finally:
        db.destroy(missing_ok=True)
        for name in names:
            doc = users.get_or_none(f"org.couchdb.user:{name}")
            if doc is not None:
                users.delete(doc["_id"], doc["_rev"])
        for client in (attacker, other, admin):
            client.close()


def regex_attacks(attacker: CouchClient, other: CouchClient, path: str, idle: float,
                  pid: int | None, chars: int) -> None:
    regex = {"note": {"$regex": "^(a+)+$"}}
    find = partial(attacker.request, "POST", f"{path}/_find", json_body={"selector": regex},
                   ok=ANY_STATUS, idempotent=False)
    attack(f"$regex ^(a+)+$ in _find against {chars} a's + '!'", find, other, path, idle, pid)
    feed = partial(attacker.request, "POST", f"{path}/_changes",
                   params={"filter": "_selector"}, json_body={"selector": regex},
                   ok=ANY_STATUS, idempotent=False)
    attack("the same $regex in POST _changes?filter=_selector", feed, other, path, idle, pid)


def deep_and_attack(attacker: CouchClient, other: CouchClient, path: str, idle: float,
                    pid: int | None, depth: int) -> None:
    deep = ('{"selector":' + '{"$and":[' * depth + '{"type":"obs"}' + ']}' * depth
            + '}').encode()
    send = partial(attacker.request, "POST", f"{path}/_find", content=deep,
                   headers={"Content-Type": "application/json"}, ok=ANY_STATUS,
                   idempotent=False)
    attack(f"{depth}-deep $and in _find", send, other, path, idle, pid)


def attachment_attacks(attacker: CouchClient, other: CouchClient, db_name: str, path: str,
                       idle: float, pid: int | None, sizes: list[int]) -> None:
    for megabytes in sizes:
        doc_id = f"photo-{megabytes}"
        rev = attacker.db(db_name).put({"_id": doc_id, "type": "obs"})["rev"]
        data = bytes(range(256)) * (megabytes * 4096)

        send = partial(attacker.request, "PUT", f"{path}/{doc_id}/wound.bin",
                       params={"rev": rev}, content=data,
                       headers={"Content-Type": "application/octet-stream"}, ok=ANY_STATUS,
                       idempotent=False)
        attack(f"{megabytes} MB attachment through PUT /{{db}}/{{doc}}/{{att}}", send, other,
               path, idle, pid)


if __name__ == "__main__":
    main()
