"""Write resolutions: the resolution record first, then one ``_bulk_docs``, then a check.

Order, so that nothing a clinician wrote can be lost even if the run is cut off:

1. check that each document's live leaves are still exactly the ones the plan was made from
   (a new branch or an edit since: stop for that document and say so);
2. write the resolution records, which hold every body about to be discarded (a record that
   already exists is this same resolution, interrupted before: its id is derived from it);
3. write the merged revisions and tombstones, ``new_edits=false``, on exactly the leaves shown;
4. read the leaves again: a revision that arrived meanwhile stays live beside the result, and
   the document is reported as still conflicted;
5. write one audit entry per resolution (server admins only; see :class:`AuditSink`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from carecouch.audit import AuditEvent, AuditLog
from carecouch.couch import CouchClient, Database, Doc
from carecouch.errors import CarecouchError, CouchForbidden, CouchUnauthorized
from carecouch.ids import caseload_db

from .errors import ResolutionRefused
from .finder import leaves_changed_since, live_leaves, update_seq
from .plan import Plan

BATCH = 200


class OutcomeStatus(StrEnum):
    """How applying one resolution ended (:attr:`Outcome.status`)."""

    RESOLVED = "resolved"  # the document has one live revision: the planned one
    CHANGED = "changed"    # the document changed before or during the write; not clobbered
    FAILED = "failed"      # the server refused part of the write
    REFUSED = "refused"    # the resolution record was refused: nothing written


@dataclass
class Outcome:
    plan: Plan
    status: str
    message: str = ""
    written: bool = True  # False: nothing of this resolution reached the server

    def as_json(self) -> dict[str, Any]:
        p = self.plan
        return {"caseload": p.caseload, "doc": p.doc_id, "resolution": p.resolution_id,
                "method": p.method, "status": self.status, "message": self.message,
                "written": self.written,
                "kept_rev": p.kept_rev, "written_rev": p.written["_rev"] if p.written else None,
                "discarded_revs": p.discarded_revs}


class AuditSink:
    """Audit entries for resolutions, in ``carecouch_audit`` (carecouch/audit.py).

    That database is for server admins only; a resolver working under their own account
    cannot write there. Then the resolution records in the caseload (append-only, replicated,
    validated) are the trail, and :attr:`warning` says so.
    """

    def __init__(self, client: CouchClient, actor: str) -> None:
        self.log = AuditLog(client, actor)
        self.warning: str | None = None
        self._ready = False

    def write(self, events: Sequence[AuditEvent]) -> list[Doc]:
        if not events or self.warning:
            return []
        try:
            if not self._ready:
                self.log.ensure()
                self._ready = True
            return self.log.record_many(events)
        except (CouchForbidden, CouchUnauthorized):
            self.warning = ("no audit entry written: carecouch_audit is for server admins only;"
                            " the resolution records in the caseload are the trail")
        except CarecouchError as exc:
            self.warning = (f"no audit entry written ({exc}); the resolution records in the "
                            "caseload are the trail")
        return []


def refused(account: str, caseload: str, reason: str) -> ResolutionRefused:
    return ResolutionRefused(
        f"the server refused to let {account} resolve conflicts in caseload {caseload} "
        f"({reason}); resolving needs the carecouch:resolver role and membership of the "
        "caseload")


def apply_plans(client: CouchClient, caseload: str, plans: Sequence[Plan], *,
                audit: AuditSink | None, action: str = "conflict.resolve",
                tick: Callable[[], None] | None = None) -> list[Outcome]:
    """Apply plans for one caseload, ``BATCH`` documents per request."""
    db = client.db(caseload_db(caseload))
    seqs = {p.conflict.seq for p in plans}
    seen = _Seen(seqs.pop() if len(seqs) == 1 else None)
    seen.advance(db, plans)
    outcomes: list[Outcome] = []
    for first in range(0, len(plans), BATCH):
        batch = _apply_batch(client, db, caseload, plans[first:first + BATCH], seen,
                             plans[first + BATCH:])
        if audit is not None:
            audit.write([_event(o, action) for o in batch if o.written])
        outcomes.extend(batch)
        if tick:
            for _ in batch:
                tick()
    return outcomes


class _Seen:
    """What is known of the documents still to write since they were read: the sequence up
    to which they are known, and which of them changed after it (to be read again).

    The check after each batch's write asks ``_changes`` about that batch and every
    document still to write, from where the previous check stopped: it answers the
    after-write check and keeps the rest current, in one request that in the usual case
    reports only this resolution's own revisions. A thousand documents are not re-read to
    learn that they did not change.
    """

    def __init__(self, seq: Any) -> None:
        self.seq = seq
        self.stale: set[str] = set()

    def advance(self, db: Database, pending: Sequence[Plan]) -> None:
        self.after_write(db, self.seq, [], pending)

    def after_write(self, db: Database, before: Any, written: Sequence[Plan],
                    pending: Sequence[Plan]) -> dict[str, frozenset[str]]:
        """Leaves of the ``written`` documents that changed since ``before``; brings the
        knowledge of ``pending`` up to date on the way."""
        if before is None:
            return {}
        if self.seq is None:
            pending = []
        changed, last = leaves_changed_since(db, before,
                                             [p.doc_id for p in (*written, *pending)])
        if self.seq is not None:
            self.seq = last
            self.stale |= {p.doc_id for p in pending if p.doc_id in changed}
        return changed

    def leaves(self, db: Database, plans: Sequence[Plan]) -> dict[str, frozenset[str]]:
        """Each document's live leaves now."""
        if self.seq is None:
            return live_leaves(db, [p.doc_id for p in plans])
        now = {p.doc_id: p.conflict.leaf_revs for p in plans if p.doc_id not in self.stale}
        now.update(live_leaves(db, [p.doc_id for p in plans if p.doc_id in self.stale]))
        return now


def _event(outcome: Outcome, action: str) -> AuditEvent:
    p = outcome.plan
    return AuditEvent(action, p.caseload, {
        "doc": p.doc_id, "resolution": p.resolution_id, "method": p.method,
        "record_class": p.conflict.record_class, "kept_rev": p.kept_rev,
        "written_rev": p.written["_rev"] if p.written else None,
        "discarded_revs": p.discarded_revs, "reason": p.record["reason"],
        "undoes": p.record.get("undoes"), "status": outcome.status,
        "message": outcome.message})


def _apply_batch(client: CouchClient, db: Database, caseload: str, plans: Sequence[Plan],
                 seen: _Seen, pending: Sequence[Plan]) -> list[Outcome]:
    account = client.user or "anonymous"
    outcomes = {id(p): Outcome(p, OutcomeStatus.RESOLVED) for p in plans}
    current = seen.leaves(db, plans)
    ready = []
    for plan in plans:
        now_live = current.get(plan.doc_id, frozenset())
        if now_live != plan.conflict.leaf_revs:
            outcomes[id(plan)] = Outcome(plan, OutcomeStatus.CHANGED, _changed(plan, now_live),
                                         written=False)
        else:
            ready.append(plan)
    ready = _write_records(db, caseload, account, ready, outcomes)
    # A revision arriving after the leaves were checked is caught all the same: _changes
    # with style=all_docs lists every leaf of a document that this write changes.
    before = seen.seq if seen.seq is not None or not ready else update_seq(db)
    _write_revisions(db, caseload, account, ready, outcomes)
    _check_after(db, ready, outcomes, seen.after_write(db, before, ready, pending))
    return [outcomes[id(p)] for p in plans]


def _changed(plan: Plan, now_live: frozenset[str]) -> str:
    if len(now_live) < 2:
        return ("the document changed since it was shown: it is no longer conflicted; "
                "nothing was written")
    new = sorted(now_live - plan.conflict.leaf_revs)
    gone = sorted(plan.conflict.leaf_revs - now_live)
    parts = ([f"new live revision {', '.join(new)}"] if new else []) + (
        [f"{', '.join(gone)} is no longer a leaf"] if gone else [])
    return (f"the document changed since it was shown ({'; '.join(parts)}); nothing was "
            "written: show it again and resolve what is there now")


def _write_records(db: Database, caseload: str, account: str, plans: list[Plan],
                   outcomes: dict[int, Outcome]) -> list[Plan]:
    if not plans:
        return []
    try:
        results = db.bulk_docs([p.record for p in plans])
    except (CouchForbidden, CouchUnauthorized) as exc:
        raise refused(account, caseload, exc.reason) from exc
    written = []
    refusals = []
    for plan, result in zip(plans, results, strict=True):
        error = result.get("error")
        if not error or error == "conflict":  # conflict: this very record exists already
            written.append(plan)
            continue
        reason = f"{error}: {result.get('reason')}"
        if error in ("forbidden", "unauthorized"):
            refusals.append(reason)
        outcomes[id(plan)] = Outcome(plan, OutcomeStatus.REFUSED, "the resolution record was "
                                     f"refused ({reason}); nothing was written", written=False)
    if refusals and len(refusals) == len(plans):
        raise refused(account, caseload, refusals[0])
    return written


def _write_revisions(db: Database, caseload: str, account: str, plans: list[Plan],
                     outcomes: dict[int, Outcome]) -> None:
    docs = [doc for p in plans for doc in p.writes]
    if not docs:
        return
    try:
        errors = db.bulk_docs(docs, new_edits=False)
    except (CouchForbidden, CouchUnauthorized) as exc:
        raise refused(account, caseload, exc.reason) from exc
    by_doc: dict[str, list[str]] = {}
    for item in errors:
        if item.get("error"):
            by_doc.setdefault(str(item.get("id")), []).append(
                f"{item.get('rev', '?')}: {item.get('error')}: {item.get('reason')}")
    for plan in plans:
        if plan.doc_id in by_doc:
            outcomes[id(plan)] = Outcome(
                plan, OutcomeStatus.FAILED, "the server refused part of the resolution ("
                + "; ".join(by_doc[plan.doc_id]) + "); every discarded body is in "
                + plan.resolution_id)


def _check_after(db: Database, plans: list[Plan], outcomes: dict[int, Outcome],
                 changed: dict[str, frozenset[str]]) -> None:
    """Read again the documents where anything but this resolution's own revisions (or
    tombstones already known) appeared since just before the write."""
    if not plans:
        return
    suspect = [p for p in plans if not changed.get(p.doc_id) or not changed[p.doc_id] <= {
        p.result_rev, *(t["_rev"] for t in p.tombstones),
        *(b.rev for b in p.conflict.deleted_leaves)}]
    after = live_leaves(db, [p.doc_id for p in suspect])
    for plan in suspect:
        if outcomes[id(plan)].status != OutcomeStatus.RESOLVED:
            continue
        extra = sorted(after[plan.doc_id] - {plan.result_rev})
        if not after[plan.doc_id]:
            outcomes[id(plan)] = Outcome(
                plan, OutcomeStatus.CHANGED, "no live revision is left: another resolution of "
                "this record ran at the same time; restore with `carecouch conflicts undo "
                f"{plan.resolution_id}`")
        elif len(after[plan.doc_id]) > 1:  # one other leaf alone is a later edit of ours
            outcomes[id(plan)] = Outcome(
                plan, OutcomeStatus.CHANGED, f"revision {', '.join(extra)} arrived during the "
                "resolution and was left live: the record is still conflicted; nothing was "
                "clobbered")
