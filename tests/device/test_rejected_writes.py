"""Writes the server refuses are kept with the server's reason, never dropped; the documented
recovery for ``exclusive.reread`` re-reads the record and retries.

These run as Apache CouchDB behaves. On the embedded server they need carecouch's fix of
``new_edits=false`` + ``validate_doc_update`` (PouchDB Server 4.2.0 drops such writes silently)
and of ``oldDoc`` for replicated writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from carecouch.couch import Database
from mobile_stub.device import Device
from mobile_stub.errors import RecoveryUnavailable
from mobile_stub.replication import PushOptions
from mobile_stub.store import Rejections
from tests.helpers.devices import fast_options
from tests.helpers.waiting import wait_until

RULES = """function (newDoc, oldDoc, userCtx) {
  var admin = userCtx.roles.indexOf('_admin') !== -1;
  if (newDoc.refuse) {
    throw({forbidden: 'test.refused: this record may not be written (' + newDoc.why + ')'});
  }
  if (newDoc.type === 'approval' && !admin && !oldDoc) {
    throw({forbidden: 'exclusive.reread: the server cannot see this record\\'s previous ' +
                      'state; re-read it and retry'});
  }
}"""


def compact_away(db: Database, doc_id: str, rev: str) -> None:
    """Compact, and wait until the body of ``rev`` is gone (CouchDB compacts in the
    background: ``compact_running`` may not even be true yet when ``_compact`` answers)."""
    db.compact()
    wait_until(lambda: db.get_or_none(doc_id, rev=rev) is None, timeout=60,
               what=f"compaction removed {doc_id} {rev}")


def test_refused_writes_are_kept_with_the_reason_and_the_rest_is_stored(
        member_db: Database, make_device: Callable[..., Device]) -> None:
    member_db.put({"_id": "_design/rules", "validate_doc_update": RULES})
    device = make_device(member_db)
    assert device.sync(member_db.name).ok
    good = [device.new_record(member_db.name, "note", {"subject": f"patient:{i}", "text": "ok"})
            for i in range(3)]
    bad = device.new_record(member_db.name, "note", {"subject": "patient:9", "refuse": True,
                                                    "why": "the test says so"})

    report = device.sync(member_db.name)
    assert report.ok and report.rejected == 1
    for doc in good:
        assert member_db.get(doc["_id"])["_rev"] == doc["_rev"]
    assert member_db.get_or_none(bad["_id"]) is None

    (rejection,) = device.rejections(member_db.name)
    assert (rejection.doc_id, rejection.rev, rejection.error) == (bad["_id"], bad["_rev"],
                                                                  "forbidden")
    assert rejection.reason == "test.refused: this record may not be written (the test says so)"
    assert rejection.code == "test.refused" and rejection.recovery is None
    assert rejection.doc["why"] == "the test says so"
    # The local revision is not lost, and is not counted as waiting to be pushed.
    local = device.store.database(member_db.name)
    assert local.get(bad["_id"])["_rev"] == bad["_rev"]
    assert local.pending_revs() == []
    # A refusal with no documented recovery is not retried blindly.
    with pytest.raises(RecoveryUnavailable):
        device.retry_rejected(member_db.name, bad["_id"])
    # Nothing new: a second sync neither re-sends nor forgets it.
    again = device.sync(member_db.name)
    assert again.ok and again.push.docs_read == 0
    assert [r.rev for r in device.rejections(member_db.name)] == [bad["_rev"]]


def test_exclusive_reread_recovery_rereads_reapplies_and_is_accepted(
        member_db: Database,
        make_device: Callable[..., Device]) -> None:
    member_db.put({"_id": "_design/rules", "validate_doc_update": RULES})
    # The bridge (an admin) creates the record with a lease for the device's user.
    device = make_device(member_db)
    holder = device.credentials.current().username
    first = member_db.put({"_id": "approval:1", "type": "approval", "state": "open",
                          "lease": {"holder": holder, "grant": "g1"}})
    assert device.sync(member_db.name).ok
    # Offline, the holder completes it ...
    local = device.store.database(member_db.name)
    device.store.set_offline(True)
    device.edit(member_db.name, {**local.get("approval:1"), "state": "completed"})
    completed_rev = local.get("approval:1")["_rev"]
    # ... while the bridge renews the lease, and compaction drops the body the edit was based
    # on: the server cannot see the previous state of the device's branch.
    member_db.put({"_id": "approval:1", "_rev": first["rev"], "type": "approval",
                  "state": "open", "lease": {"holder": holder, "grant": "g2"}})
    compact_away(member_db, "approval:1", first["rev"])
    device.store.set_offline(False)

    report = device.sync(member_db.name)
    assert report.ok and report.rejected == 1
    (rejection,) = device.rejections(member_db.name)
    assert rejection.rev == completed_rev
    assert rejection.code == "exclusive.reread", (rejection.error, rejection.reason)
    assert rejection.recovery == "reread"
    assert completed_rev in [leaf.rev for leaf in local.leaves("approval:1")]

    new_rev = device.retry_rejected(member_db.name, "approval:1")
    assert device.sync(member_db.name).ok
    on_server = member_db.get("approval:1", conflicts=True)
    assert on_server["_rev"] == new_rev and "_conflicts" not in on_server
    assert on_server["state"] == "completed"
    assert on_server["lease"]["grant"] == "g2"  # the server's lease, not the stale one
    assert completed_rev not in [leaf.rev for leaf in local.leaves("approval:1")]
    assert device.rejections(member_db.name) == []
    (kept,) = Rejections(local).list(state="retried")
    assert kept.resolved_by == new_rev and kept.doc["state"] == "completed"


def test_a_refusal_one_copy_gave_is_not_kept_when_the_revision_arrives(
        member_db: Database, make_device: Callable[..., Device],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """On a cluster one copy can refuse a write the other copies stored, and CouchDB may
    answer the refusal (fabric_doc_update: one forbidden, the other replies empty); the next
    ``_revs_diff`` may come from that copy too. Internal replication then brings it the
    revision. Built here on one copy: the server refuses the device's revision, and, while the
    device pauses to ask again, the revision arrives as internal replication writes it (an
    admin's ``new_edits=false`` write). The device records it as stored, not as refused."""
    member_db.put({"_id": "_design/rules", "validate_doc_update": """function (doc, old, ctx) {
      if (doc.refuse_here && ctx.roles.indexOf('_admin') === -1) {
        throw({forbidden: 'test.refused: one copy refuses this'});
      }
    }"""})
    options = fast_options()
    device = make_device(member_db, options=replace(options, push=PushOptions(
        confirm_delays=(0.0, 0.0))))
    doc = device.new_record(member_db.name, "note", {"subject": "patient:1", "refuse_here": True})
    sent: list[dict[str, Any]] = []
    asked: list[int] = []
    bulk_docs, revs_diff = Database.bulk_docs, Database.revs_diff

    def spy_bulk_docs(self: Database, docs: list[dict[str, Any]], *,
                      new_edits: bool = True) -> list[dict[str, Any]]:
        if self.client is not member_db.client:
            sent.extend(d for d in docs if d["_id"] == doc["_id"])
        return bulk_docs(self, docs, new_edits=new_edits)

    def spy_revs_diff(self: Database, revs: Any) -> Any:
        if self.client is not member_db.client and doc["_id"] in revs and sent:
            asked.append(1)
            if len(asked) == 2:  # the first asking again: the revision has arrived
                bulk_docs(member_db, sent[:1], new_edits=False)
        return revs_diff(self, revs)

    monkeypatch.setattr(Database, "bulk_docs", spy_bulk_docs)
    monkeypatch.setattr(Database, "revs_diff", spy_revs_diff)
    report = device.sync(member_db.name)
    assert report.ok and report.rejected == 0, report.message
    assert len(asked) == 2  # after the write, then once again
    assert device.rejections(member_db.name) == []
    assert member_db.get(doc["_id"])["_rev"] == doc["_rev"]
    assert device.store.database(member_db.name).pending_revs() == []
