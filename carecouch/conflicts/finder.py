"""Find conflicted documents: which caseloads to look in, and the ``conflicts`` view.

The view lists exactly the conflicted documents with their live leaves, so finding conflicts
never reads every document; the leaves' bodies are then fetched for those documents only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from carecouch import ddocs
from carecouch.couch import CouchClient, Database, Doc
from carecouch.errors import CarecouchError, CouchForbidden, CouchNotFound, CouchUnauthorized
from carecouch.ids import caseload_db, check_caseload_id
from carecouch.parallel import DEFAULT_WORKERS, map_parallel
from carecouch.records import Registry
from carecouch.registry import CaseloadRegistry

from .branches import Conflict, missing, read_many
from .errors import RecordNotFound
from .merge import parse_time
from .policy import Decision, decide

VIEW = "conflicts"
KEYS_PER_REQUEST = 200
MEMBER_PREFIX = "caseload:"


class OutdatedDesign(CarecouchError):
    """The caseload's conflicts view predates conflict review."""


def caseload_scope(client: CouchClient, wanted: Sequence[str] = ()) -> list[str]:
    """The caseloads to look in: ``wanted``, else every active one in the registry.

    The registry is for server admins; a resolver's own account cannot read it, so for that
    account the caseloads are the ones its ``caseload:<id>`` roles make it a member of.
    """
    if wanted:
        return sorted({check_caseload_id(c) for c in wanted})
    try:
        return CaseloadRegistry(client).active_ids()
    except (CouchUnauthorized, CouchForbidden):
        roles = client.session().get("userCtx", {}).get("roles", [])
        return sorted(r[len(MEMBER_PREFIX):] for r in roles
                      if isinstance(r, str) and r.startswith(MEMBER_PREFIX))


@dataclass(frozen=True)
class ViewRow:
    doc_id: str
    type: str | None
    leaves: frozenset[str]


def _row(caseload: str, row: Doc) -> ViewRow:
    value = row.get("value")
    if not isinstance(value, dict):
        raise OutdatedDesign(f"caseload {caseload} has an outdated conflicts view; upgrade its "
                             "design documents with `carecouch caseload apply`")
    return ViewRow(str(row["id"]), row["key"][0],
                   frozenset([value["rev"], *value.get("conflicts", [])]))


def conflict_rows(db: Database, caseload: str) -> list[ViewRow]:
    """Every conflicted document of one caseload (one view request)."""
    try:
        rows = db.view(ddocs.MAIN_DDOC, VIEW, reduce=False)["rows"]
    except CouchNotFound as exc:
        if "database" in exc.reason.lower():
            raise RecordNotFound(missing(db, caseload, "", exc)) from exc
        raise OutdatedDesign(f"caseload {caseload} has no conflicts view ({exc.reason}); "
                             "provision it with `carecouch caseload apply`") from exc
    return [_row(caseload, r) for r in rows]


def live_leaves(db: Database, doc_ids: Sequence[str]) -> dict[str, frozenset[str]]:
    """The live leaves of each document now; empty for a deleted or missing one.

    ``_all_docs`` with ``conflicts=true``: one request per batch, answered from the by-id
    index, so checking a thousand documents costs no view update.
    """
    found: dict[str, frozenset[str]] = {doc_id: frozenset() for doc_id in doc_ids}
    for first in range(0, len(doc_ids), KEYS_PER_REQUEST):
        keys = list(doc_ids[first:first + KEYS_PER_REQUEST])
        for row in db.all_docs(keys=keys, include_docs=True, conflicts=True)["rows"]:
            doc = row.get("doc")
            if isinstance(doc, dict):
                found[str(row["id"])] = frozenset([doc["_rev"], *doc.get("_conflicts", [])])
    return found


def update_seq(db: Database) -> Any:
    return db.info()["update_seq"]


def leaves_changed_since(db: Database, since: Any,
                         doc_ids: Sequence[str]) -> tuple[dict[str, frozenset[str]], Any]:
    """Every leaf, live or deleted, of those of ``doc_ids`` that changed after ``since``,
    and the sequence that answer is good for.

    One ``_changes`` request that returns only what changed: the cheap way to learn that
    nothing did, which is the usual answer.
    """
    found: dict[str, frozenset[str]] = {}
    result = db.changes(body={"doc_ids": list(doc_ids)}, filter="_doc_ids",
                        style="all_docs", since=since)
    for row in result.get("results", []):
        revs = frozenset(str(c["rev"]) for c in row.get("changes", []))
        found[str(row["id"])] = found.get(str(row["id"]), frozenset()) | revs
    return found, result.get("last_seq")


def read_caseload(client: CouchClient, caseload: str, registry: Registry, *,
                  for_writing: bool = False) -> list[Conflict]:
    """The conflicts of one caseload with their live branches; ``for_writing`` reads the
    attachments' data too (a resolution keeps what it discards) and stamps each conflict with
    the sequence the caseload was at before they were read (for the write-time check)."""
    db = client.db(caseload_db(caseload))
    try:
        seq = update_seq(db) if for_writing else None
    except CouchNotFound as exc:
        raise RecordNotFound(missing(db, caseload, "", exc)) from exc
    rows = conflict_rows(db, caseload)
    found = [c for c in read_many(db, caseload, [(r.doc_id, sorted(r.leaves)) for r in rows],
                                  registry, attachments=for_writing) if c.conflicted]
    for conflict in found:
        conflict.seq = seq
    return found


@dataclass
class Listed:
    """One line of ``conflicts list``."""

    conflict: Conflict
    decision: Decision
    newest_edit: str | None
    age_seconds: int | None

    def as_json(self) -> dict[str, Any]:
        c = self.conflict
        return {"caseload": c.caseload, "doc": c.doc_id, "type": c.record_type
                or c.winner.get("type"), "class": c.record_class, "subject": c.subject,
                "branches": len(c.branches), "revs": [b.rev for b in c.branches],
                "newest_edit": self.newest_edit, "age_seconds": self.age_seconds,
                "needs_review": self.decision.needs_review,
                "supervisory": self.decision.supervisory, "action": self.decision.label,
                "reason": self.decision.reason, "proposal": self.decision.proposal}


CLASS_ORDER = {"exclusive": 0, "append-only": 1, "mergeable": 2}


def sort_key(item: Listed) -> tuple[int, int, int, str, str]:
    """Exclusive records first, then whatever needs review, then the oldest first."""
    return (CLASS_ORDER.get(item.conflict.record_class or "", 3),
            0 if item.decision.needs_review else 1, -(item.age_seconds or 0),
            item.conflict.caseload, item.conflict.doc_id)


@dataclass
class Found:
    items: list[Listed] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # caseload -> why it was not read

    def counts(self) -> dict[str, dict[str, int]]:
        """Conflicted documents per caseload and record class."""
        out: dict[str, dict[str, int]] = {}
        for item in self.items:
            by_class = out.setdefault(item.conflict.caseload, {})
            name = item.conflict.record_class or "unknown"
            by_class[name] = by_class.get(name, 0) + 1
        return out


def find_conflicts(client: CouchClient, caseloads: Sequence[str], registry: Registry, *,
                   now: str, workers: int = DEFAULT_WORKERS,
                   tick: Callable[[], None] | None = None) -> Found:
    """Every conflict in ``caseloads``, sorted for review; a caseload that cannot be read
    is reported in ``errors`` and does not stop the others."""
    def one(caseload: str) -> list[Listed]:
        return [_listed(c, registry, now) for c in read_caseload(client, caseload, registry)]

    found = Found()
    for caseload, result in zip(caseloads, map_parallel(one, list(caseloads), workers=workers,
                                                        tick=tick), strict=True):
        if isinstance(result, CarecouchError):
            found.errors[caseload] = str(result)
        else:
            found.items.extend(result)
    found.items.sort(key=sort_key)
    return found


def _listed(conflict: Conflict, registry: Registry, now: str) -> Listed:
    # Age: time since the newest of the conflicting edits (device time). The conflict arose
    # when the later of them reached the server, so it has waited at most this long.
    times = [(parse_time(b.get("at")), b.get("at")) for b in conflict.branches]
    known = [(t, text) for t, text in times if t is not None]
    newest = max(known)[1] if known else None
    current = parse_time(now)
    age = (current[0] - max(known)[0][0]) if known and current else None
    return Listed(conflict, decide(conflict, registry), newest, age)
