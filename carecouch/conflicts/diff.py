"""Branches side by side: a field-level diff, with the common ancestor where it is still held.

Rows come in sections: ``envelope`` (who wrote each branch, on which device, when by the
device's clock and by the server's), ``lease`` (exclusive records), ``field`` (the record's
own fields), ``stamp`` (mergeable records' change stamps) and ``attachment`` (type, size and
digest of each attached file).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from carecouch.couch import Database, Doc
from carecouch.ddocs import canonical_json
from carecouch.provenance import SignerKey, Verdict, verify
from carecouch.records import Registry

from . import attachments
from .branches import Branch, Conflict, common_ancestor, read_revision
from .merge import parse_time
from .policy import Decision, decide

MISSING: Any = None  # a field a branch does not have; `present` says which


@dataclass(frozen=True)
class Row:
    section: str  # envelope | lease | field | stamp | attachment
    name: str
    values: tuple[Any, ...]  # one per branch, winner first
    present: tuple[bool, ...]
    ancestor: Any = None
    ancestor_present: bool = False

    @property
    def differs(self) -> bool:
        return len({(p, canonical_json(v)) for v, p in zip(self.values, self.present,
                                                      strict=True)}) > 1

    def as_json(self) -> dict[str, Any]:
        return {"section": self.section, "name": self.name, "differs": self.differs,
                "values": [v if p else {"absent": True}
                           for v, p in zip(self.values, self.present, strict=True)],
                "ancestor": self.ancestor if self.ancestor_present else None}


@dataclass
class Inspection:
    conflict: Conflict
    decision: Decision
    ancestor_rev: str | None
    ancestor: Doc | None  # None: no common ancestor, or compaction removed its body
    rows: list[Row] = field(default_factory=list)
    # Per branch, who provably wrote it (provenance.py); None: the keys could not be read.
    provenance: list[Verdict] | None = None

    def as_json(self) -> dict[str, Any]:
        c = self.conflict
        return {"caseload": c.caseload, "doc": c.doc_id, "type": c.record_type,
                "class": c.record_class, "subject": c.subject,
                "branches": [b.body for b in c.branches],
                "revs": [b.rev for b in c.branches],
                "ancestor": {"rev": self.ancestor_rev, "body": self.ancestor,
                             "held": self.ancestor is not None} if self.ancestor_rev else None,
                "diff": [r.as_json() for r in self.rows],
                "provenance": None if self.provenance is None else [
                    {"rev": b.rev, "provenance": v.provenance.value, "signer": v.signer,
                     "verified": v.verified, "reason": v.reason}
                    for b, v in zip(c.branches, self.provenance, strict=True)],
                "decision": {"action": self.decision.label, "reason": self.decision.reason,
                             "needs_review": self.decision.needs_review,
                             "supervisory": self.decision.supervisory,
                             "proposal": self.decision.proposal}}


def server_time(body: Mapping[str, Any]) -> str | None:
    """``at`` corrected by the device's offset to the server clock."""
    when, offset = parse_time(body.get("at")), body.get("clock_offset_ms")
    if when is None or not isinstance(offset, int):
        return None
    moment = datetime.fromtimestamp(when[0], UTC) + timedelta(microseconds=when[1] // 1000,
                                                              milliseconds=offset)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


ENVELOPE = ("author", "device", "at", "clock_offset_ms")
LEASE = ("holder", "device", "granted_at", "expires_at", "grant")


def _row(section: str, name: str, branches: Sequence[Branch], get: Any,
         ancestor: Doc | None) -> Row:
    values, present = [], []
    for branch in branches:
        ok, value = get(branch.body)
        values.append(value)
        present.append(ok)
    a_ok, a_value = get(ancestor) if ancestor is not None else (False, None)
    return Row(section, name, tuple(values), tuple(present), a_value, a_ok)


def _top(name: str) -> Any:
    def get(body: Mapping[str, Any]) -> tuple[bool, Any]:
        return name in body, body.get(name)
    return get


def _nested(parent: str, name: str) -> Any:
    def get(body: Mapping[str, Any]) -> tuple[bool, Any]:
        outer = body.get(parent)
        if isinstance(outer, Mapping) and name in outer:
            return True, outer[name]
        return False, None
    return get


def _server_time(body: Mapping[str, Any]) -> tuple[bool, Any]:
    value = server_time(body)
    return value is not None, value


def _attachment(name: str) -> Any:
    def get(body: Mapping[str, Any]) -> tuple[bool, Any]:
        entry = attachments.entries(body).get(name)
        if entry is None:
            return False, None
        return True, {"content_type": entry.get("content_type"), "length": entry.get("length"),
                      "digest": attachments.digest_of(entry)}
    return get


def inspect(db: Database, conflict: Conflict, registry: Registry,
            keys: Mapping[str, SignerKey] | None = None) -> Inspection:
    """The branches side by side; with ``keys`` (the registry's signer keys), whether an
    enrolled device or the bridge provably wrote each one."""
    branches = conflict.branches
    ancestor_rev = common_ancestor(branches) if len(branches) > 1 else None
    ancestor = read_revision(db, conflict.doc_id, ancestor_rev) if ancestor_rev else None
    rows = [_row("envelope", n, branches, _top(n), ancestor) for n in ENVELOPE]
    rows.append(_row("envelope", "server time", branches, _server_time, ancestor))
    record_class = conflict.record_class
    if record_class == "exclusive":
        rows += [_row("lease", n, branches, _nested("lease", n), ancestor) for n in LEASE]
    spec = registry.types.get(conflict.record_type or "")
    skip = set(ENVELOPE) | {"type", "subject", "_id", "lease", registry.metadata_field,
                            registry.signature_field}
    names = sorted({n for b in branches for n in b.content if n not in skip}
                   | set(spec.fields if spec else ()))
    rows += [_row("field", n, branches, _top(n), ancestor) for n in names]
    if record_class == "mergeable":
        rows += [_row("stamp", n, branches, _nested(registry.metadata_field, n), ancestor)
                 for n in names]
    files = sorted({n for b in branches for n in attachments.entries(b.body)})
    rows += [_row("attachment", n, branches, _attachment(n), ancestor) for n in files]
    rows = [r for r in rows if any(r.present) or r.ancestor_present]
    provenance = None if keys is None else [verify(b.body, keys) for b in branches]
    return Inspection(conflict, decide(conflict, registry), ancestor_rev, ancestor, rows,
                      provenance)
