"""Connections cut at random points during pull and push, many times: afterwards the server
and the device hold exactly the same revisions (every leaf, every history), none lost."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from carecouch.couch import Database
from mobile_stub.device import Device
from mobile_stub.replication import PullOptions, PushOptions, ReplicatorOptions, RetryPolicy
from tests.helpers.chaos_proxy import ChaosProxy
from tests.helpers.server import Server

from .support import device_leaves, server_leaves

# Few tries per step, so that many syncs stop half-way and must resume from checkpoints too.
CHAOS = ReplicatorOptions(pull=PullOptions(batch_size=40, bulk_get_size=15,
                                           checkpoint_interval=0),
                          push=PushOptions(batch_size=25),
                          retry=RetryPolicy(attempts=3, base_delay=0.005, max_delay=0.02))


def edit_on_server(db: Database, round_: int) -> None:
    """Creates, updates (so pulls need _bulk_get with history), conflicts and deletions."""
    rows = db.all_docs(include_docs=True)["rows"]
    docs = [row["doc"] for row in rows if row["id"].startswith("server:")]
    updates = [{**doc, "round": round_, "pad": secrets.token_hex(64)} for doc in docs[::3]]
    deletions = [{"_id": doc["_id"], "_rev": doc["_rev"], "_deleted": True}
                 for i, doc in enumerate(docs) if i % 17 == 1 and i % 3]
    fresh = [{"_id": f"server:{round_}:{i}", "type": "observation", "round": round_,
              "pad": secrets.token_hex(96)} for i in range(60)]
    db.bulk_docs(updates + deletions + fresh)
    # A conflict made the way a replicator makes one: a second leaf on an existing document.
    if docs:
        target = docs[-1]
        pos, _ = target["_rev"].split("-")
        leaf = secrets.token_hex(16)
        db.bulk_docs([{**target, "_rev": f"{int(pos) + 1}-{leaf}", "branch": round_,
                       "_revisions": {"start": int(pos) + 1,
                                      "ids": [leaf, target["_rev"].split("-")[1]]}}],
                     new_edits=False)


def edit_on_device(device: Device, db: str, round_: int) -> None:
    local = device.store.database(db)
    for i in range(40):
        device.new_record(db, "note", {"subject": f"patient:{i}", "round": round_,
                                       "text": secrets.token_hex(80)})
    for doc_id in local.doc_ids()[::7]:
        device.edit(db, {**local.get(doc_id), "device_round": round_})


@pytest.fixture
def rewrites(member_db: Database, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Revisions a device sent with ``_bulk_docs`` although the server already held them.

    Wraps the real call (it still goes over HTTP): before each device write, asks the server
    directly, not through the proxy, which of the revisions it holds already. (On a cluster
    that answer, like the device's, comes from one copy: see the test.)
    """
    found: list[tuple[str, str]] = []
    original = Database.bulk_docs

    def spy(self: Database, docs: list[dict[str, Any]], *, new_edits: bool = True
            ) -> list[dict[str, Any]]:
        if not new_edits and self.client is not member_db.client:
            diff = member_db.revs_diff({d["_id"]: [d["_rev"]] for d in docs})
            found.extend((d["_id"], d["_rev"]) for d in docs
                         if d["_rev"] not in diff.get(d["_id"], {}).get("missing", []))
        return original(self, docs, new_edits=new_edits)

    monkeypatch.setattr(Database, "bulk_docs", spy)
    return found


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_random_cuts_lose_and_duplicate_nothing(
        seed: int, server: Server, member_db: Database, make_device: Callable[..., Device],
        rewrites: list[tuple[str, str]]) -> None:
    target = urlsplit(server.url)
    assert target.hostname and target.port
    with ChaosProxy(target.hostname, target.port, seed=seed, cut_probability=1.0,
                    max_bytes=16_000) as proxy:
        device = make_device(member_db, url=proxy.url, options=CHAOS)
        for round_ in range(3):
            edit_on_server(member_db, round_)
            edit_on_device(device, member_db.name, round_)
            for _ in range(300):
                if device.sync(member_db.name).ok:
                    break
            else:
                pytest.fail(f"no complete sync in 300 tries under faults (seed {seed})")
        assert proxy.stats.cuts >= 20, proxy.stats  # the network really was hostile
        proxy.set_faults(0.0)
        assert device.sync(member_db.name).ok  # a clean pass: nothing left to move either way

    local = device.store.database(member_db.name)
    # Nothing lost, nothing duplicated: the same leaves, with the same histories and bodies,
    # on both sides, and no revision the device holds kept as refused.
    assert device_leaves(local) == server_leaves(member_db)
    assert device.rejections(member_db.name) == []
    if member_db.copies() == 1:
        # One copy answers _revs_diff with everything it holds, so a step retried after a
        # cut never sends again what reached the server. A cluster answers from the first
        # copy of each shard range to reply (fabric_doc_missing_revs), which may not hold yet
        # what the others stored a moment before the cut: the device then sends it again,
        # which is harmless (CouchDB ignores a revision it has; the leaves above prove no
        # extra branch came of it).
        assert rewrites == []
    assert local.pending_revs() == []
    # Locally, the store's UNIQUE (db, doc_id, rev) fails any second write of a revision.
    # And the tree is whole: every parent is present.
    rows = device.store.conn.execute("SELECT doc_id, rev, parent FROM revs").fetchall()
    known = {(doc_id, rev) for doc_id, rev, _ in rows}
    assert all((doc_id, parent) in known for doc_id, _, parent in rows if parent)
