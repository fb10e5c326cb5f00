"""Who resolved what, when and why: the resolution records, joined with the audit trail.

The resolution records live in each caseload (append-only, replicated with it, readable by
its members); the audit entries in ``carecouch_audit`` (server admins only) add the outcome
of each write. Either alone is enough to answer the question; both are read when allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from carecouch.audit import AuditLog
from carecouch.clock import parse_utc
from carecouch.couch import CouchClient, Doc
from carecouch.errors import CarecouchError, CouchForbidden, CouchUnauthorized
from carecouch.ids import caseload_db
from carecouch.parallel import DEFAULT_WORKERS, map_parallel

from .plan import RESOLUTION_TYPE

ACTIONS = ("conflict.resolve", "conflict.undo")


@dataclass
class Entry:
    resolution: str
    caseload: str
    doc: str | None
    at: str | None
    resolver: str | None
    method: str | None
    record_class: str | None
    reason: str | None
    kept_rev: str | None = None
    written_rev: str | None = None
    discarded_revs: list[str] = field(default_factory=list)
    undoes: str | None = None
    undone_by: list[str] = field(default_factory=list)
    status: str | None = None  # from the audit entry: resolved, changed, failed
    sources: list[str] = field(default_factory=list)  # "record", "audit"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Trail:
    entries: list[Entry]
    errors: dict[str, str]
    audit_note: str | None = None


def _from_record(caseload: str, doc: Doc) -> Entry:
    return Entry(resolution=str(doc["_id"]), caseload=caseload, doc=doc.get("resolves"),
                 at=doc.get("at"), resolver=doc.get("author"), method=doc.get("method"),
                 record_class=doc.get("record_class"), reason=doc.get("reason"),
                 kept_rev=doc.get("kept_rev"), written_rev=doc.get("written_rev"),
                 discarded_revs=[str(d.get("_rev")) for d in doc.get("discarded", [])
                                 if isinstance(d, dict)],
                 undoes=doc.get("undoes"), sources=["record"])


def _at_or_after(at: str | None, since: str) -> bool:
    # As instants: "...00Z" and "...00.000000Z" are the same time but do not sort as strings.
    try:
        return at is not None and parse_utc(at) >= parse_utc(since)
    except ValueError:
        return (at or "") >= since


def records(client: CouchClient, caseload: str) -> list[Doc]:
    """The caseload's resolution records: their ids share a prefix, so one range read."""
    prefix = f"{RESOLUTION_TYPE}:"
    rows = client.db(caseload_db(caseload)).all_docs(
        startkey=prefix, endkey=prefix + "\ufff0", include_docs=True)["rows"]
    return [r["doc"] for r in rows if isinstance(r.get("doc"), dict)
            and r["doc"].get("type") == RESOLUTION_TYPE]


def read_trail(client: CouchClient, caseloads: Sequence[str], *, since: str | None = None,
               workers: int = DEFAULT_WORKERS,
               tick: Callable[[], None] | None = None) -> Trail:
    entries: dict[str, Entry] = {}
    errors: dict[str, str] = {}
    results = map_parallel(lambda c: records(client, c), list(caseloads), workers=workers,
                           tick=tick)
    for caseload, result in zip(caseloads, results, strict=True):
        if isinstance(result, CarecouchError):
            errors[caseload] = str(result)
            continue
        for doc in result:
            entries[str(doc["_id"])] = _from_record(caseload, doc)
    note = None
    try:
        audit = AuditLog(client, client.user or "anonymous").entries(since=since)
    except (CouchForbidden, CouchUnauthorized):
        audit = []
        note = "carecouch_audit not read (server admins only): showing resolution records"
    wanted = set(caseloads)
    for item in audit:
        details = item.get("details") or {}
        if item.get("action") not in ACTIONS or item.get("subject") not in wanted:
            continue
        key = str(details.get("resolution"))
        entry = entries.get(key)
        if entry is None:  # the record is gone with its caseload, or was never written
            entry = entries[key] = Entry(
                resolution=key, caseload=str(item.get("subject")), doc=details.get("doc"),
                at=item.get("at"), resolver=item.get("actor"), method=details.get("method"),
                record_class=details.get("record_class"), reason=details.get("reason"),
                kept_rev=details.get("kept_rev"), written_rev=details.get("written_rev"),
                discarded_revs=list(details.get("discarded_revs") or []),
                undoes=details.get("undoes"))
        entry.status = details.get("status") or ("resolved" if item.get("action")
                                                  == "conflict.undo" else None)
        entry.sources.append("audit")
    for entry in entries.values():
        if entry.undoes and entry.undoes in entries:
            entries[entry.undoes].undone_by.append(entry.resolution)
    listed = sorted((e for e in entries.values() if since is None or _at_or_after(e.at, since)),
                    key=lambda e: (e.at or "", e.resolution))
    return Trail(listed, errors, note)
