"""``carecouch audit verify``: is every revision a caseload holds provably from where it says?

Each revision is put in one class:

- ``verified``: signed by the enrolled device the record names (a revoked device's key still
  verifies what it dated before its revocation), or by the bridge (exclusive records it
  creates and leases) — carecouch/provenance.py;
- ``resolution``: written by conflict review and accounted for by a resolution in the trail:
  a resolution record, a merged revision it wrote, a tombstone on a revision it discarded;
- flagged: ``unsigned`` (written by other means than a device: an admin, a copied password,
  software that does not sign), ``unknown_key``, ``bad_signature`` (changed after signing,
  or naming another device than the one that signed).

What CouchDB holds the body of is what can be checked: every leaf revision (live, conflicting
or deleted); earlier revisions lose their bodies to compaction (checked while they were
leaves, if verify ran then).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .clock import parse_utc
from .conflicts.trail import Entry
from .couch import CouchClient, Doc
from .ids import caseload_db
from .provenance import Provenance, SignerKey, verify
from .records import Registry

RESOLUTION = "resolution"
BATCH = 500  # revisions per _bulk_get


@dataclass(frozen=True)
class Finding:
    caseload: str
    doc_id: str
    rev: str
    kind: str            # a Provenance value, or "resolution"
    signer: str | None
    author: str | None
    device: str | None
    at: str | None
    reason: str

    @property
    def flagged(self) -> bool:
        return self.kind not in (Provenance.VERIFIED, RESOLUTION)

    def to_json(self) -> dict[str, Any]:
        return {"caseload": self.caseload, "doc": self.doc_id, "rev": self.rev,
                "provenance": self.kind, "signer": self.signer, "author": self.author,
                "device": self.device, "at": self.at, "reason": self.reason}


@dataclass
class Report:
    counts: dict[str, int] = field(default_factory=dict)
    flagged: list[Finding] = field(default_factory=list)
    checked: int = 0

    def add(self, finding: Finding) -> None:
        self.checked += 1
        self.counts[finding.kind] = self.counts.get(finding.kind, 0) + 1
        if finding.flagged:
            self.flagged.append(finding)


@dataclass(frozen=True)
class Accounted:
    """What conflict review wrote in a caseload, from its resolutions."""

    records: frozenset[str]
    written: frozenset[str]
    discarded: frozenset[str]

    @classmethod
    def of(cls, entries: Sequence[Entry]) -> Accounted:
        return cls(frozenset(e.resolution for e in entries),
                   frozenset(e.written_rev for e in entries if e.written_rev),
                   frozenset(r for e in entries for r in e.discarded_revs))


def verify_caseload(client: CouchClient, caseload: str, keys: Mapping[str, SignerKey],
                    accounted: Accounted, registry: Registry, report: Report, *,
                    since: str | None = None, tick: Callable[[int], None] | None = None) -> None:
    """Check every leaf revision of ``caseload`` (dated at or after ``since``) into
    ``report``."""
    start = parse_utc(since) if since is not None else None
    for doc in _leaves(client, caseload):
        if start is not None and not doc.get("_deleted") and _before(doc.get("at"), start):
            continue
        report.add(_finding(caseload, doc, keys, accounted, registry))
        if tick is not None:
            tick(1)


def _before(at: Any, start: datetime) -> bool:
    try:
        return parse_utc(str(at)) < start
    except ValueError:
        return False  # no readable time: checked, never skipped


def _finding(caseload: str, doc: Doc, keys: Mapping[str, SignerKey], accounted: Accounted,
             registry: Registry) -> Finding:
    doc_id, rev = str(doc["_id"]), str(doc["_rev"])

    def found(kind: str, signer: str | None, reason: str) -> Finding:
        return Finding(caseload, doc_id, rev, kind, signer, doc.get("author"),
                       doc.get("device"), doc.get("at"), reason)

    if doc.get("_deleted"):
        if _parent(doc) in accounted.discarded:
            return found(RESOLUTION, None, "a tombstone on a revision a resolution discarded")
        return found(Provenance.UNSIGNED, None, "deleted, and no resolution accounts for it")
    if doc.get("type") == RESOLUTION and doc_id in accounted.records:
        return found(RESOLUTION, None, "a resolution record of conflict review")
    if rev in accounted.written:
        return found(RESOLUTION, None, "the revision a resolution wrote (a merge)")
    if registry.types.get(str(doc.get("type"))) is None:
        return found(Provenance.UNSIGNED, None, "not a clinical record the registry knows")
    verdict = verify(doc, keys)
    return found(verdict.provenance, verdict.signer, verdict.reason)


def _parent(doc: Doc) -> str | None:
    revisions = doc.get("_revisions")
    if isinstance(revisions, Mapping) and len(revisions.get("ids") or []) > 1:
        return f"{int(revisions['start']) - 1}-{revisions['ids'][1]}"
    return None


def _leaves(client: CouchClient, caseload: str) -> Iterator[Doc]:
    """Every leaf revision of the caseload's documents, design documents aside, read in
    batches (bounded memory whatever the caseload's size)."""
    db = client.db(caseload_db(caseload))
    since: Any = 0
    while True:
        page = db.changes(style="all_docs", since=since, limit=BATCH * 2)
        results = page.get("results") or []
        refs = [{"id": row["id"], "rev": change["rev"]} for row in results
                if not str(row.get("id", "")).startswith("_design/")
                for change in row.get("changes") or []]
        for start in range(0, len(refs), BATCH):
            for result in db.bulk_get(refs[start:start + BATCH], revs=True):
                for entry in result.get("docs") or []:
                    if isinstance(entry.get("ok"), dict):
                        yield entry["ok"]
        since = page.get("last_seq", since)
        if len(results) < BATCH * 2:
            return
