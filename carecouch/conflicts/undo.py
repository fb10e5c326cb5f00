"""Undo a resolution: put back, as live leaves, the revisions it discarded.

Each discarded body is written back verbatim on top of the tombstone that discarded it (the
record rules let resolvers restore: deletion.js). For a merge, the branch written on was
discarded too: the merged revision is tombstoned and that branch's body restored on top, a
second request because the restore must see the tombstone stored. The undo is itself an
append-only ``resolution`` record (method ``undo``), written first, holding the body of the
merged revision it discards. Afterwards the document is conflicted again, as it was.

A branch edited since the resolution is left alone and reported: undo never discards an edit
it did not make.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from carecouch.audit import AuditEvent
from carecouch.couch import CouchClient, Doc
from carecouch.errors import CouchForbidden, CouchUnauthorized
from carecouch.ids import caseload_db
from carecouch.records import Registry
from carecouch.revs import child, content, rev_key

from . import attachments
from .apply import AuditSink, refused
from .branches import Branch, Conflict, make_conflict
from .errors import CannotResolve, DocumentChanged, RecordNotFound
from .identity import Resolver
from .merge import same
from .plan import RESOLUTION_TYPE, check_reason, resolution_record

RESOLUTION_PREFIX = f"{RESOLUTION_TYPE}:"


@dataclass
class UndoPlan:
    caseload: str
    undone: Doc  # the resolution being undone
    conflict: Conflict  # the document's leaves now
    record: Doc | None  # the undo's own resolution record; None: nothing to do
    first: list[Doc] = field(default_factory=list)  # restores, and the merge's tombstone
    second: list[Doc] = field(default_factory=list)  # the merge's base branch, restored
    restored: list[str] = field(default_factory=list)  # discarded revisions put back
    notes: list[str] = field(default_factory=list)  # what is not restored, and why

    @property
    def doc_id(self) -> str:
        return self.conflict.doc_id

    def as_json(self) -> dict[str, Any]:
        return {"caseload": self.caseload, "doc": self.doc_id,
                "undoes": self.undone["_id"], "resolution": self.record,
                "restored_revs": self.restored, "notes": self.notes,
                "bulk_docs": [{"new_edits": False, "docs": docs}
                              for docs in (self.first, self.second) if docs]}


def normal_id(resolution: str) -> str:
    return resolution if resolution.startswith(RESOLUTION_PREFIX) else (
        RESOLUTION_PREFIX + resolution)


def plan_undo(client: CouchClient, caseload: str, resolution: str, registry: Registry, *,
              reason: str, resolver: Resolver, now: str) -> UndoPlan:
    db = client.db(caseload_db(caseload))
    undone = db.get_or_none(normal_id(resolution), attachments=True)  # the discarded data
    if undone is None or undone.get("type") != RESOLUTION_TYPE:
        raise RecordNotFound(f"no resolution {normal_id(resolution)} in caseload {caseload}")
    if undone.get("method") == "undo":
        raise CannotResolve(f"{undone['_id']} is itself an undo; resolve the record again "
                            "instead")
    doc_id = str(undone["resolves"])
    # With attachment data: a merged revision this undo discards goes into its record whole.
    leaves = [r["ok"] for r in db.leaf_revisions(doc_id, revs=True, attachments=True)
              if isinstance(r.get("ok"), dict)]
    conflict = make_conflict(caseload, doc_id, leaves, registry)
    plan = UndoPlan(caseload, undone, conflict, None)
    everything = sorted(conflict.branches + conflict.deleted_leaves,
                        key=lambda b: rev_key(b.rev), reverse=True)
    discarding: list[Branch] = []
    for body in undone.get("discarded", []):
        _restore_one(plan, body, everything, discarding)
    if not plan.first:
        return plan
    plan.record = resolution_record(
        conflict, method="undo", kept_rev=str(undone["kept_rev"]), written_rev=None,
        discarded=[b.body for b in discarding], tombstoned=[b.rev for b in discarding],
        reason=check_reason(reason), resolver=resolver, now=now, undoes=str(undone["_id"]),
        subject=str(undone["subject"]), record_class=str(undone["record_class"]))
    return plan


def _restore_one(plan: UndoPlan, body: Doc, leaves: list[Branch],
                 discarding: list[Branch]) -> None:
    rev = str(body["_rev"])
    on_branch = [leaf for leaf in leaves if rev in leaf.history]
    live = [leaf for leaf in on_branch if not leaf.deleted]
    if any(leaf.rev == rev or (same(leaf.content, content(body))
                               and leaf.attachments == attachments.signature(body))
           for leaf in live):
        plan.notes.append(f"{rev} is live already")
        return
    data, lacking = attachments.restore(body, plan.undone.get(attachments.FIELD) or {})
    if lacking:  # restoring it without them would pass off a partial revision as the original
        plan.notes.append(f"{rev} not restored: its resolution record does not hold the data "
                          f"of attachment {', '.join(lacking)}")
        return
    written = plan.undone.get("written_rev")
    if live:
        if rev == plan.undone.get("kept_rev") and [leaf.rev for leaf in live] == [written]:
            merged = live[0]  # the merge this undo takes back
            tombstone = child(merged.body, None)
            discarding.append(merged)
            plan.first.append(tombstone)
            plan.second.append(child(tombstone, body, data))
            plan.restored.append(rev)
            return
        plan.notes.append(f"{rev} not restored: its branch was edited after the resolution "
                          f"(live: {', '.join(leaf.rev for leaf in live)})")
        return
    if not on_branch:
        plan.notes.append(f"{rev} not restored: the document's history no longer reaches it")
        return
    plan.first.append(child(on_branch[0].body, body, data))  # on its branch's newest tombstone
    plan.restored.append(rev)


def _check(results: list[Doc], account: str, caseload: str, what: str) -> None:
    # 409 on the record: this same undo was recorded by an interrupted run.
    errors = [r for r in results if r.get("error") not in (None, "conflict")]
    if not errors:
        return
    reason = f"{errors[0]['error']}: {errors[0].get('reason')}"
    if errors[0]["error"] in ("forbidden", "unauthorized"):
        raise refused(account, caseload, reason)
    raise CannotResolve(f"the server refused {what} ({reason}); run the undo again to finish")


def apply_undo(client: CouchClient, plan: UndoPlan, *, audit: AuditSink | None) -> None:
    """Write the undo record, then the restores; stop if the document changed meanwhile."""
    if plan.record is None:
        return
    db = client.db(caseload_db(plan.caseload))
    account = client.user or "anonymous"
    now_live = {r["ok"]["_rev"] for r in db.leaf_revisions(plan.doc_id)
                if isinstance(r.get("ok"), dict) and not r["ok"].get("_deleted")}
    if now_live != set(plan.conflict.leaf_revs):
        raise DocumentChanged(f"{plan.doc_id} changed since the undo was planned; nothing was "
                              "written: run the undo again")
    try:
        _check(db.bulk_docs([plan.record]), account, plan.caseload, "the undo record")
        for docs in (plan.first, plan.second):
            if docs:
                _check(db.bulk_docs(docs, new_edits=False), account, plan.caseload,
                       "the restore")
    except (CouchForbidden, CouchUnauthorized) as exc:
        raise refused(account, plan.caseload, exc.reason) from exc
    if audit is not None:
        audit.write([AuditEvent("conflict.undo", plan.caseload, {
            "doc": plan.doc_id, "resolution": plan.record["_id"], "method": "undo",
            "record_class": plan.record["record_class"], "kept_rev": plan.record["kept_rev"],
            "undoes": plan.undone["_id"], "restored_revs": plan.restored,
            "discarded_revs": [d["_rev"] for d in plan.record["discarded"]],
            "reason": plan.record["reason"], "notes": plan.notes})])
