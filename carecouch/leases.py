"""Leases on exclusive records (docs/record-rules.md, "Exclusive records").

The bridge writes ``lease`` = {holder, device, granted_at, expires_at, grant} into the record
on the server, as its own CouchDB user (role ``carecouch:bridge``: the record rules let it
create exclusive records and change leases, nothing else). CouchDB's MVCC serialises competing
claims: of two writes on the same revision, the second gets 409 and is re-evaluated against
the first's lease.

On a cluster each copy of the database judges a write on its own, and a write returns once two
of the three copies hold it. A copy that has not yet received the latest revision can accept a
write on the revision before it (CouchDB answers 202), and internal replication then spreads it
as a second branch: two competing leases, or a lease beside a completion. So the bridge reads
every record with ``conflicts=true`` and reads back every lease it writes:

- a completion on any branch wins: the record is completed (``lease.completed``); a live lease
  on any other branch is removed, so nobody is handed it again, and the branches stay for
  supervisory review (never resolved here);
- competing live leases are settled the same way whichever bridge instance looks: the earliest
  (``granted_at``, then ``grant``) wins; losing branches have their lease removed and the
  winner's branch is extended until CouchDB also picks it as the winning revision.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from .clock import format_utc
from .couch import Database, Doc
from .errors import CarecouchError, CouchConflict, CouchForbidden, CouchNotFound
from .records import RecordType, Registry

ATTEMPTS = 6


class LeaseError(CarecouchError):
    """A lease request that cannot be granted; ``code`` and ``status`` go to the client."""

    def __init__(self, code: str, message: str, status: int = 409,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.details = details or {}


@dataclass(frozen=True)
class Granted:
    record: Doc  # the record as it stands with the lease (winning revision)
    lease: dict[str, Any]
    changed: bool  # False: the caller already held this lease (no new lease was written)
    settled: int  # conflicting branches whose lease was removed


def _generation(rev: str) -> int:
    return int(rev.split("-", 1)[0])


def _live(lease: Any, now: datetime) -> bool:
    return isinstance(lease, dict) and str(lease.get("expires_at", "")) > format_utc(now)


class Leases:
    """Lease operations on one caseload database, as the bridge's CouchDB user."""

    def __init__(self, db: Database, registry: Registry,
                 sign: Callable[[Doc], Doc] | None = None) -> None:
        self.db = db
        self.registry = registry
        # Each revision the bridge writes is signed as the bridge (provenance.py): a lease
        # change would otherwise leave the holder's signature over content it no longer has.
        self._sign = sign or (lambda doc: doc)

    def record_type(self, doc: Doc) -> RecordType:
        spec = self.registry.types.get(str(doc.get("type")))
        if spec is None or spec.record_class != "exclusive":
            raise LeaseError("lease.not_exclusive", f"{doc.get('_id')} is not an exclusive "
                             "record; only exclusive records are leased", 422)
        return spec

    def read(self, record_id: str) -> tuple[Doc, RecordType]:
        """The record (its winning revision) and its type; ``lease.completed`` when any
        branch of it is completed. The winner comes with ``_conflicts`` when it has
        branches."""
        try:
            doc = self.db.get(record_id, conflicts=True)
        except CouchNotFound as exc:
            raise LeaseError("lease.no_record", f"no record {record_id} in this caseload",
                             404) from exc
        spec = self.record_type(doc)
        if doc.get("_conflicts"):
            self.refuse_if_completed(record_id, self.live_leaves(record_id), spec)
        if doc.get("status") in spec.terminal:
            raise LeaseError("lease.completed", f"{record_id} is {doc.get('status')}, which is "
                             "final", 409, {"status": doc.get("status")})
        return doc, spec

    def live_leaves(self, record_id: str) -> list[Doc]:
        return [leaf["ok"] for leaf in self.db.open_revs(record_id, "all")
                if isinstance(leaf.get("ok"), dict) and not leaf["ok"].get("_deleted")]

    def refuse_if_completed(self, record_id: str, leaves: list[Doc], spec: RecordType) -> None:
        """``lease.completed`` if any branch is completed, after removing every lease on the
        other branches: a branch that grew beside the completion (on a cluster, accepted by a
        copy that had not received it) must not be leased or completed again. Its branches
        stay for supervisory review."""
        done = [leaf for leaf in leaves if leaf.get("status") in spec.terminal]
        if not done:
            return
        self._strip([leaf for leaf in leaves if leaf.get("status") not in spec.terminal])
        first = min(done, key=lambda d: (str(d.get("completed_at")), str(d["_rev"])))
        raise LeaseError("lease.completed", f"{record_id} is {first.get('status')} on one of "
                         "its branches; it is flagged for conflict review", 409,
                         {"status": first.get("status")})

    def claim(self, record_id: str, holder: str, device: str, lifetime: int,
              now: datetime | None = None) -> Granted:
        for _ in range(ATTEMPTS):
            moment = now or datetime.now(UTC)
            doc, _ = self.read(record_id)
            current: dict[str, Any] = doc.get("lease") or {}
            if _live(current, moment):
                if (current.get("holder"), current.get("device")) != (holder, device):
                    raise self.taken(current)
                if doc.get("_conflicts"):  # another branch may hold an earlier lease
                    return self.settle(record_id, current, moment, changed=False)
                return Granted(_body(doc), current, changed=False, settled=0)
            lease = {"holder": holder, "device": device, "granted_at": format_utc(moment),
                     "expires_at": format_utc(moment + timedelta(seconds=lifetime)),
                     "grant": uuid.uuid4().hex}
            try:
                self.db.put(self._sign({**_body(doc), "lease": lease}))
            except (CouchConflict, CouchForbidden):
                # Someone wrote first (or, refused, the record changed under us: on a cluster
                # a copy that lacks the latest revision answers 409 where the others refuse):
                # look again at what is there.
                continue
            return self.settle(record_id, lease, moment)
        raise LeaseError("lease.busy", f"{record_id} keeps changing; try again", 503)

    def renew(self, record_id: str, holder: str, device: str, grant: str, lifetime: int,
              now: datetime | None = None) -> Granted:
        """Extend the holder's lease; ``granted_at`` and ``grant`` stay, so a completion made
        offline under the lease stays inside it."""
        return self._change(record_id, holder, device, grant, lifetime, now)

    def release(self, record_id: str, holder: str, device: str, grant: str,
                now: datetime | None = None) -> Granted:
        return self._change(record_id, holder, device, grant, None, now)

    def _change(self, record_id: str, holder: str, device: str, grant: str,
                lifetime: int | None, now: datetime | None) -> Granted:
        for _ in range(ATTEMPTS):
            moment = now or datetime.now(UTC)
            doc, _ = self.read(record_id)
            current = doc.get("lease")
            if (not isinstance(current, dict) or current.get("grant") != grant
                    or (current.get("holder"), current.get("device")) != (holder, device)):
                raise LeaseError("lease.not_held", f"you do not hold lease {grant} on "
                                 f"{record_id}", 409, {"holder": self.holder_of(current)})
            body = {k: v for k, v in _body(doc).items() if k != "lease"}
            lease: dict[str, Any] = {}
            if lifetime is not None:
                lease = {**current,
                         "expires_at": format_utc(moment + timedelta(seconds=lifetime))}
                body["lease"] = lease
            try:
                self.db.put(self._sign(body))
            except (CouchConflict, CouchForbidden):
                continue  # as in claim: look again
            if lifetime is None:
                return Granted(self.db.get(record_id), {}, changed=True, settled=0)
            return self.settle(record_id, lease, moment)
        raise LeaseError("lease.busy", f"{record_id} keeps changing; try again", 503)

    # -- read-back and settling ------------------------------------------------------------

    def settle(self, record_id: str, mine: dict[str, Any], now: datetime, *,
               changed: bool = True) -> Granted:
        """Read back; if branches hold competing leases, keep the earliest one on every
        instance alike. Raises :class:`LeaseError` when ``mine`` lost, or when a branch is
        completed (``lease.completed``, every other branch's lease removed)."""
        settled = 0
        for _ in range(ATTEMPTS):
            doc = self.db.get(record_id, conflicts=True)
            if not doc.get("_conflicts"):
                lease = doc.get("lease")
                if isinstance(lease, dict) and lease.get("grant") == mine["grant"]:
                    return Granted(doc, lease, changed=changed, settled=settled)
                raise self.taken(lease) if _live(lease, now) else LeaseError(
                    "lease.busy", f"{record_id} changed while the lease was written; try "
                    "again", 503)
            leaves = self.live_leaves(record_id)
            self.refuse_if_completed(record_id, leaves, self.record_type(doc))
            leased = [leaf for leaf in leaves if _live(leaf.get("lease"), now)]
            if not leased:
                raise LeaseError("lease.busy", f"{record_id} changed while the lease was "
                                 "written; try again", 503)
            winner = min(leased, key=lambda d: (str(d["lease"].get("granted_at")),
                                                str(d["lease"].get("grant"))))
            if doc["_rev"] == winner["_rev"] and not any(
                    "lease" in leaf for leaf in leaves if leaf["_rev"] != winner["_rev"]):
                # Settled: CouchDB's winning revision holds the earliest lease, no other
                # branch holds one. The branches stay for conflict review.
                if winner["lease"].get("grant") != mine["grant"]:
                    raise self.taken(winner["lease"])
                return Granted(_body(doc), winner["lease"], changed=changed, settled=settled)
            settled += self._strip([leaf for leaf in leaves if leaf["_rev"] != winner["_rev"]])
            self._extend_winner(record_id, winner)
        raise LeaseError("lease.busy", f"{record_id}: competing leases could not be settled; "
                         "try again", 503)

    def _strip(self, leaves: list[Doc]) -> int:
        """Remove the lease from each of ``leaves`` (branches that must not be completed);
        returns how many were written."""
        stripped = 0
        for leaf in leaves:
            if "lease" not in leaf:
                continue
            try:
                self.db.put(self._sign({k: v for k, v in leaf.items() if k != "lease"}))
                stripped += 1
            except (CouchConflict, CouchForbidden):
                pass  # that branch moved on: the next look sees it again
        return stripped

    def _extend_winner(self, record_id: str, winner: Doc) -> None:
        """Rewrite the winning branch (unchanged) until it is the longest: CouchDB's winning
        revision is the longest branch, so every reader then sees the settled lease."""
        leaves = self.db.open_revs(record_id, "all")
        longest = max(_generation(leaf["ok"]["_rev"]) for leaf in leaves
                      if isinstance(leaf.get("ok"), dict) and not leaf["ok"].get("_deleted"))
        current = winner
        while _generation(current["_rev"]) <= longest:
            try:
                result = self.db.put(current)
            except CouchConflict:
                return  # it moved on; the next round re-reads
            current = {**current, "_rev": result["rev"]}

    def holder_of(self, lease: Any) -> dict[str, Any] | None:
        if not isinstance(lease, dict):
            return None
        return {k: lease.get(k) for k in ("holder", "device", "granted_at", "expires_at")}

    def taken(self, lease: Any) -> LeaseError:
        holder = self.holder_of(lease) or {}
        return LeaseError("lease.taken", f"the record is leased to {holder.get('holder')} until "
                          f"{holder.get('expires_at')}", 409, {"holder": holder})


def _body(doc: Doc) -> Doc:
    """``doc`` as it is written back: without the ``_conflicts`` it was read with."""
    return {k: v for k, v in doc.items() if k != "_conflicts"}


def new_exclusive_record(spec: RecordType, subject: str, fields: dict[str, Any],
                         author: str) -> Doc:
    """An exclusive record as the bridge creates it: in its initial status, unleased.

    ``author`` is the bridge's CouchDB user and ``device`` is ``bridge``: the record rules
    exempt the bridge from authorship for exclusive records (it creates them on a clinician's
    behalf; the audit trail names who asked).
    """
    return {"_id": f"{spec.name}:{uuid.uuid4()}", "type": spec.name, "subject": subject,
            "author": author, "device": "bridge", "at": format_utc(datetime.now(UTC)),
            "clock_offset_ms": 0, **fields, "status": spec.initial_status}
