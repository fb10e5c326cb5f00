"""Replication speed of the reference device beside PouchDB's replicator, same server, same run.

    .venv/bin/python benchmarks/replication_pull.py [--docs 10000] [--rounds 3]

Each round fills a fresh database with ``--docs`` records of ~300 bytes and measures, each
side starting from the same place (the set-up of both is printed in the first round):

- the server's own limit: the changes feed the device reads
  (``_changes?style=all_docs&include_docs=true``) streamed with no work on the client: in one
  request, and in the pages the device asks for; bytes received are counted, not parsed. No
  client can pull faster than the server streams; one ``_changes`` read that is parsed too (the
  "floor" this benchmark printed before) is not a floor: the device parses and stores one page
  while the server streams the next, and can beat it. Each of these reads, and a pull of ours
  into a new store, is done three times alternately and the fastest kept: load from elsewhere
  only adds time;
- initial pull into an empty local database: ours; PouchDB 9's replicator with its defaults
  (batch_size 100) and with batch_size 1000;
- incremental sync after 100 documents changed on the server, both sides checkpointed in both
  directions: pull only, then (after another 100 changed) pull + push;
- push of 1,000 records written on the device, on two footings: both checkpointed (each local
  database holds the pulled caseload and has pushed once since, so 1,000 changes follow its
  push checkpoint), and both fresh (a local database holding only the 1,000 new records, no
  checkpoint). Both sides push the same bodies (the peer's under new ids).

Figures are medians over the rounds with the range (min-max); ratios are taken per round
(both figures of a round saw the same machine load), then their median and range.

Targets (issue "Reference field device"): initial pull >= 3x faster than PouchDB's default
replicator and within 1.5x of the server's streaming time for the same pages. On the
embedded server, server and device share the machine's cores: what one does, the other waits
for.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replication_support import (
    BenchServer,
    CountingReplicator,
    bench_server,
    by_method,
    fill,
    new_store,
    pouchdb,
    replicator,
)
from support import spread

from carecouch.couch import Database, Doc
from mobile_stub.device import Device
from mobile_stub.replication import PullOptions, PushOptions

FEED = {"style": "all_docs", "include_docs": True}
ROW = b'"changes":[{"rev":'  # once per row of the feed, whichever order the server writes
CHANGED = 100
PUSHED = 1000
LIMIT_TRIES = 3

Keep = Callable[[str, float], None]


# -- the server's limit -------------------------------------------------------------------------

@dataclass
class Streamed:
    seconds: float
    size: int  # bytes of JSON (decoded: a server may compress what it sends)
    wire: int  # bytes as received
    requests: int = 1


def stream_one(db: Database) -> Streamed:
    """The whole feed in one request, received and dropped."""
    started = time.perf_counter()
    size = 0
    with db.client.stream("GET", f"{db.path}/_changes", params=FEED) as response:
        for chunk in response.iter_bytes():
            size += len(chunk)
        wire = response.num_bytes_downloaded
    return Streamed(time.perf_counter() - started, size, wire)


def stream_paged(db: Database, options: PullOptions) -> Streamed:
    """The feed in the pages the device asks for (``first_batch`` doubling up to
    ``batch_size``), each requested as soon as the previous one arrived, dropped: only the
    rows are counted and ``last_seq`` read from the tail."""
    started = time.perf_counter()
    size = wire = requests = 0
    since: Any = None
    limit = options.first_batch
    while True:
        params: dict[str, Any] = {**FEED, "limit": limit}
        if since is not None:
            params["since"] = since if isinstance(since, str) else json.dumps(since)
        rows, carry, tail = 0, b"", b""
        with db.client.stream("GET", f"{db.path}/_changes", params=params) as response:
            for chunk in response.iter_bytes():
                size += len(chunk)
                data = carry + chunk
                rows += data.count(ROW)
                # Shorter than ROW: a row split between chunks is counted once, none twice.
                carry = data[1 - len(ROW):]
                tail = (tail + chunk)[-4096:]
            wire += response.num_bytes_downloaded
        requests += 1
        if rows < limit:
            return Streamed(time.perf_counter() - started, size, wire, requests)
        since = last_seq(tail)
        limit = min(options.batch_size, limit * 2)


def last_seq(tail: bytes) -> Any:
    at = tail.rindex(b'"last_seq"')
    value, _ = json.JSONDecoder().raw_decode(tail[tail.index(b":", at) + 1:].decode().lstrip())
    return value


def parse_one(db: Database) -> float:
    """One ``_changes`` read, parsed (what this benchmark used to call the floor)."""
    started = time.perf_counter()
    rows = db.changes(**FEED)["results"]
    elapsed = time.perf_counter() - started
    assert rows
    return elapsed


# -- the round ----------------------------------------------------------------------------------

def change_on_server(db: Database, count: int, skip: int) -> None:
    rows = db.all_docs(include_docs=True, limit=count, skip=skip)["rows"]
    db.bulk_docs([{**row["doc"], "note": f"changed {uuid.uuid4().hex}"} for row in rows])


def write_records(device: Device, db: Database, count: int) -> list[Doc]:
    """``count`` notes written on our device; the same bodies, under new ids, for the peer."""
    docs = [device.new_record(db.name, "note", {"subject": f"patient:{i}",
                                                "text": f"visit {i}, written offline"})
            for i in range(count)]
    return [{**{k: v for k, v in doc.items() if k != "_rev"},
             "_id": f"note:pouch{uuid.uuid4().hex}"} for doc in docs]


def fresh_copies(docs: list[Doc]) -> list[Doc]:
    return [{**doc, "_id": f"note:pouch{uuid.uuid4().hex}"} for doc in docs]


class Round:
    def __init__(self, server: BenchServer, db: Database, scratch: Path, docs: int,
                 keep: Keep, verbose: bool) -> None:
        self.server, self.db, self.scratch, self.docs = server, db, scratch, docs
        self.keep, self.verbose = keep, verbose
        self.pushed_to: dict[str, Any] = {}  # PouchDB database -> its push checkpoint's seq
        scratch.mkdir(parents=True)

    def say(self, text: str) -> None:
        if self.verbose:
            print(text)

    def pouch(self, name: str, mode: str, **extra: Any) -> dict[str, Any]:
        result = pouchdb(self.server, self.db, self.scratch / name, mode, **extra)
        if mode in ("push", "sync"):
            self.pushed_to[name] = result["last_seq"]
        return result

    def push_checkpointed_pouch(self, name: str, **extra: Any) -> tuple[dict[str, Any], int]:
        """Push from ``name``; with how many local changes followed its push checkpoint."""
        checkpoint = int(self.pushed_to[name])
        result = self.pouch(name, "push", **extra)
        return result, int(result["local"]["update_seq"]) - checkpoint

    def ours(self, sync: CountingReplicator, **directions: bool) -> tuple[float, Any]:
        started = time.perf_counter()
        report = sync.sync(self.db.name, **directions)
        elapsed = time.perf_counter() - started
        assert report.ok, report.to_json()
        return elapsed, report

    def run(self) -> None:
        self.limit()
        store = new_store(self.scratch, self.db, self.server.url)
        ours = replicator(store, self.server)
        self.initial_pull(ours)
        self.checkpoint_pushes(ours)
        self.incremental(ours)
        device = Device(store, ours.credentials)
        self.push_checkpointed(ours, device)
        store.close()
        self.push_fresh()

    def limit(self) -> None:
        """Each read LIMIT_TRIES times, alternating with a pull of ours into a new store,
        keeping the fastest of each: a limit is what the server can do, and load from
        elsewhere on the machine only adds time (so ours is held to its fastest too)."""
        stream_one(self.db)  # not timed: the first read after the fill pays for warming up
        ones, pages, parsed, pulls = [], [], [], []
        for _ in range(LIMIT_TRIES):
            ones.append(stream_one(self.db))
            pages.append(stream_paged(self.db, PullOptions()))
            parsed.append(parse_one(self.db))
            store = new_store(self.scratch, self.db, self.server.url)
            pulls.append(self.ours(replicator(store, self.server), push=False)[0])
            store.close()
        self.keep("ours_pull_best", min(pulls))
        one = min(ones, key=lambda s: s.seconds)
        paged = min(pages, key=lambda s: s.seconds)
        self.keep("stream_one", one.seconds)
        self.keep("stream_mb_s", one.size / one.seconds / 1e6)
        self.keep("stream_docs_s", self.docs / one.seconds)
        self.keep("stream_paged", paged.seconds)
        self.keep("paged_mb_s", paged.size / paged.seconds / 1e6)
        self.keep("parse_one", min(parsed))
        sent = "compressed" if one.wire < one.size else "not compressed"
        self.say(f"  the feed: {one.size:,} bytes of JSON for {self.docs} documents "
                 f"({one.wire:,} bytes as sent: {sent}, both clients accept gzip); the "
                 f"device's pages take {paged.requests} requests")

    def initial_pull(self, ours: CountingReplicator) -> None:
        seconds, report = self.ours(ours, push=False)
        assert report.pull.docs_written == self.docs, report.to_json()
        self.keep("ours_pull", seconds)
        default = self.pouch("pouch-default", "pull")
        assert default["docs_written"] == self.docs, default
        self.keep("pouch_pull", default["seconds"])
        bigger = self.pouch("pouch-1000", "pull", batch_size=1000)
        self.keep("pouch_pull_1000", bigger["seconds"])
        self.say(f"  initial pull, all into empty local databases: ours sent "
                 f"{by_method(ours.requests)}; PouchDB defaults {by_method(default['requests'])}"
                 f"; PouchDB batch 1000 {by_method(bigger['requests'])}")

    def checkpoint_pushes(self, ours: CountingReplicator) -> None:
        """Not timed: each side pushes once, writing nothing, so both hold a push
        checkpoint before anything is changed."""
        _, report = self.ours(ours, pull=False)
        default = self.pouch("pouch-default", "push")
        bigger = self.pouch("pouch-1000", "push", batch_size=1000)
        assert report.push.docs_written == default["docs_written"] == bigger["docs_written"] == 0
        self.say(f"  set-up (not timed), a first push that writes nothing, so both sides hold "
                 f"a push checkpoint: ours offered {report.push.missing_checked} revisions "
                 f"(it knows what it pulled); PouchDB checkpointed at local seq "
                 f"{default['last_seq']} (defaults) and {bigger['last_seq']} (batch 1000)")

    def incremental(self, ours: CountingReplicator) -> None:
        change_on_server(self.db, CHANGED, skip=CHANGED * 3)
        seconds, report = self.ours(ours, push=False)
        assert report.pull.docs_written == CHANGED, report.to_json()
        self.keep("ours_inc_pull", seconds)
        pouch = self.pouch("pouch-default", "pull")
        assert pouch["docs_written"] == CHANGED, pouch
        self.keep("pouch_inc_pull", pouch["seconds"])
        self.say(f"  incremental pull of {CHANGED} changed, both checkpointed: ours sent "
                 f"{by_method(ours.requests)}; PouchDB {by_method(pouch['requests'])}")

        change_on_server(self.db, CHANGED, skip=CHANGED * 5)
        seconds, report = self.ours(ours)
        assert report.pull.docs_written == CHANGED and report.push.docs_written == 0
        self.keep("ours_inc_sync", seconds)
        pouch = self.pouch("pouch-default", "sync")
        assert pouch["docs_written"] == CHANGED, pouch
        self.keep("pouch_inc_sync", pouch["seconds"])
        self.say(f"  incremental pull + push of {CHANGED} more, both checkpointed both ways, "
                 f"nothing to push: ours sent {by_method(ours.requests)}; PouchDB "
                 f"{by_method(pouch['requests'])}")

    def push_checkpointed(self, ours: CountingReplicator, device: Device) -> None:
        bodies = write_records(device, self.db, PUSHED)
        local = ours.store.database(self.db.name).counts()["docs"]
        seconds, report = self.ours(ours, pull=False)
        assert report.push.docs_written == PUSHED, report.to_json()
        self.keep("ours_push_ckpt", seconds)
        self.pouch("pouch-default", "edit", docs=bodies)
        default, default_after = self.push_checkpointed_pouch("pouch-default")
        self.pouch("pouch-1000", "edit", docs=fresh_copies(bodies))
        bigger, bigger_after = self.push_checkpointed_pouch("pouch-1000", batch_size=1000)
        assert default["docs_written"] == bigger["docs_written"] == PUSHED, (default, bigger)
        assert default_after == bigger_after == PUSHED, (default_after, bigger_after)
        self.keep("pouch_push_ckpt", default["seconds"])
        self.keep("pouch_push_ckpt_1000", bigger["seconds"])
        self.say(f"  push of {PUSHED}, both checkpointed: ours holds {local} documents and "
                 f"offered {report.push.missing_checked} revisions, sending "
                 f"{by_method(ours.requests)}; PouchDB (defaults) holds "
                 f"{default['local']['doc_count']} with {default_after} changes after its "
                 f"push checkpoint, sending {by_method(default['requests'])}; PouchDB (batch "
                 f"1000) holds {bigger['local']['doc_count']} with {bigger_after} after its "
                 f"checkpoint, sending {by_method(bigger['requests'])}")

    def push_fresh(self) -> None:
        store = new_store(self.scratch, self.db, self.server.url)
        ours = replicator(store, self.server)
        device = Device(store, ours.credentials)
        device.learn_rules(self.db.name)  # as the synced device did: the database has none
        bodies = write_records(device, self.db, PUSHED)
        seconds, report = self.ours(ours, pull=False)
        assert report.push.docs_written == PUSHED, report.to_json()
        store.close()
        self.keep("ours_push_fresh", seconds)
        self.pouch("pouch-fresh", "edit", docs=bodies)
        default = self.pouch("pouch-fresh", "push")
        self.pouch("pouch-fresh-1000", "edit", docs=fresh_copies(bodies))
        bigger = self.pouch("pouch-fresh-1000", "push", batch_size=1000)
        assert default["docs_written"] == bigger["docs_written"] == PUSHED, (default, bigger)
        self.keep("pouch_push_fresh", default["seconds"])
        self.keep("pouch_push_fresh_1000", bigger["seconds"])
        self.say(f"  push of {PUSHED}, both fresh (a local database holding only them, no "
                 f"checkpoint): ours sent {by_method(ours.requests)}; PouchDB (defaults) "
                 f"{by_method(default['requests'])}; PouchDB (batch 1000) "
                 f"{by_method(bigger['requests'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    figures: dict[str, list[float]] = {}

    def keep(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    pull, push = PullOptions(), PushOptions()
    with bench_server() as server, tempfile.TemporaryDirectory() as scratch:
        admin = server.client()
        print(f"server: {server.description}")
        print(f"carecouch-device: encrypted SQLite store; pull pages {pull.first_batch} "
              f"doubling to {pull.batch_size}, {pull.prefetch} pages read ahead, _bulk_get "
              f"{pull.bulk_get_size}; push steps of {push.batch_size} (_revs_diff, _bulk_docs, "
              f"_revs_diff)")
        print("PouchDB 9 (Node, LevelDB on disk): replicate() with its defaults (batch_size "
              "100, batches_limit 10) and with batch_size 1000; timed inside Node, process "
              "start not counted")
        for round_ in range(options.rounds):
            # A fresh database each round: the push phases add documents to it.
            db = admin.db(f"bench_pull_{uuid.uuid4().hex[:8]}")
            fill(db, options.docs)
            if round_ == 0:
                print("set-up of both sides (round 1; the same in every round):")
            try:
                Round(server, db, Path(scratch) / str(round_), options.docs, keep,
                      verbose=round_ == 0).run()
            finally:
                db.destroy(missing_ok=True)
            print(f"round {round_ + 1}/{options.rounds} done")
        admin.close()
    report(figures, options.docs)


def report(figures: dict[str, list[float]], docs: int) -> None:
    def row(label: str, name: str, versus: str | None = None, note: str = "") -> None:
        text = f"  {label:42} {spread(figures[name]):>22}"
        if versus is not None:
            text += f"   ours is {ratio(name, versus)} faster"
        print(text + note)

    def ratio(peer: str, ours: str) -> str:
        return spread([a / b for a, b in zip(figures[peer], figures[ours], strict=True)],
                      digits=1, unit="x")

    rounds = len(figures["stream_one"])
    print()
    print(f"{rounds} rounds; median (min-max) of the rounds; ratios per round, then median "
          "(min-max)")
    print(f"the server's limit: the feed of {docs} docs streamed, no work on the client:")
    print(f"  (the fastest of {LIMIT_TRIES} tries in each round: other load only adds time)")
    row("one request, bytes dropped", "stream_one",
        note=f"   {spread(figures['stream_mb_s'], 1, ' MB/s')}, "
             f"{spread(figures['stream_docs_s'], 0, ' docs/s')}")
    row("the device's pages, bytes dropped", "stream_paged",
        note=f"   {spread(figures['paged_mb_s'], 1, ' MB/s')}")
    row("one request, parsed (the old 'floor')", "parse_one")
    print(f"initial pull of {docs} docs:")
    row(f"carecouch-device, fastest of {LIMIT_TRIES}", "ours_pull_best",
        note=f"   {ratio('ours_pull_best', 'stream_paged')} the server's time for these "
             "pages (target <= 1.5x)")
    row("carecouch-device replicator", "ours_pull")
    row("PouchDB 9 replicator, defaults", "pouch_pull", "ours_pull", " (target >= 3x)")
    row("PouchDB 9 replicator, batch 1000", "pouch_pull_1000", "ours_pull")
    print(f"incremental, {CHANGED} docs changed on the server, both checkpointed:")
    row("carecouch-device, pull", "ours_inc_pull")
    row("PouchDB 9 replicator, pull", "pouch_inc_pull", "ours_inc_pull")
    row("carecouch-device, pull + push", "ours_inc_sync")
    row("PouchDB 9 replicator, pull + push", "pouch_inc_sync", "ours_inc_sync")
    print(f"push of {PUSHED} records written on the device, both checkpointed:")
    row("carecouch-device", "ours_push_ckpt")
    row("PouchDB 9 replicator, defaults", "pouch_push_ckpt", "ours_push_ckpt")
    row("PouchDB 9 replicator, batch 1000", "pouch_push_ckpt_1000", "ours_push_ckpt")
    print(f"push of {PUSHED} records, both from a local database holding only them:")
    row("carecouch-device", "ours_push_fresh")
    row("PouchDB 9 replicator, defaults", "pouch_push_fresh", "ours_push_fresh")
    row("PouchDB 9 replicator, batch 1000", "pouch_push_fresh_1000", "ours_push_fresh")
    print("all rounds: " + ", ".join(f"{k}={'/'.join(f'{v:.2f}' for v in vs)}"
                                     for k, vs in sorted(figures.items())))


if __name__ == "__main__":
    main()
