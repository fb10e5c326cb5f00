"""The live leaf revisions ("branches") of conflicted documents, read from the server.

One document: ``open_revs=all``. Many: one ``_bulk_get`` per batch naming exactly the live
leaves the ``conflicts`` view reported, so a long history of tombstones is never fetched.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from carecouch.couch import Database, Doc
from carecouch.errors import CouchNotFound
from carecouch.records import Registry
from carecouch.revs import content, history, rev_key

from .attachments import Signature, signature
from .errors import RecordNotFound

BATCH = 200  # documents per _bulk_get: a few hundred kB of bodies per request


@dataclass(frozen=True)
class Branch:
    """One leaf revision as read with ``revs=true``."""

    body: Doc

    @property
    def rev(self) -> str:
        return str(self.body["_rev"])

    @property
    def deleted(self) -> bool:
        return bool(self.body.get("_deleted"))

    @property
    def history(self) -> list[str]:
        return history(self.body)

    @property
    def content(self) -> Doc:
        return content(self.body)

    @property
    def attachments(self) -> Signature:
        return signature(self.body)

    def get(self, name: str, default: Any = None) -> Any:
        return self.body.get(name, default)


@dataclass
class Conflict:
    """A document and its live branches, CouchDB's winner first."""

    caseload: str
    doc_id: str
    branches: list[Branch]
    record_type: str | None = None
    record_class: str | None = None
    deleted_leaves: list[Branch] = field(default_factory=list)
    seq: Any = None  # the database's update sequence before the leaves were read

    @property
    def leaf_revs(self) -> frozenset[str]:
        return frozenset(b.rev for b in self.branches)

    @property
    def winner(self) -> Branch:
        return self.branches[0]

    @property
    def subject(self) -> str | None:
        value = self.winner.get("subject")
        return value if isinstance(value, str) else None

    @property
    def conflicted(self) -> bool:
        return len(self.branches) > 1

    def branch(self, rev: str) -> Branch:
        for branch in self.branches:
            if branch.rev == rev:
                return branch
        raise KeyError(rev)


def make_conflict(caseload: str, doc_id: str, leaves: Iterable[Doc],
                  registry: Registry) -> Conflict:
    """Sort leaves as CouchDB does (winner first); look up the record class."""
    ordered = sorted((Branch(doc) for doc in leaves), key=lambda b: rev_key(b.rev),
                     reverse=True)
    live = [b for b in ordered if not b.deleted]
    conflict = Conflict(caseload, doc_id, live, deleted_leaves=[b for b in ordered if b.deleted])
    if live:
        record_type = live[0].get("type")
        if isinstance(record_type, str) and record_type in registry.types:
            conflict.record_type = record_type
            conflict.record_class = registry.types[record_type].record_class
    return conflict


def read_conflict(db: Database, caseload: str, doc_id: str, registry: Registry, *,
                  attachments: bool = False) -> Conflict:
    """Every leaf of one document (live and deleted), with histories; ``attachments``: with
    the attachments' data, as a resolution must read what it may discard."""
    try:
        results = db.leaf_revisions(doc_id, revs=True, attachments=attachments or None)
    except CouchNotFound as exc:
        raise RecordNotFound(missing(db, caseload, f"no document {doc_id}", exc)) from None
    if not isinstance(results, list):  # an id such as _all_docs names an endpoint
        raise RecordNotFound(f"no document {doc_id} in caseload {caseload}")
    leaves = [r["ok"] for r in results if isinstance(r, dict) and isinstance(r.get("ok"), dict)]
    conflict = make_conflict(caseload, doc_id, leaves, registry)
    if not conflict.branches:
        raise RecordNotFound(f"document {doc_id} in caseload {caseload} is deleted")
    return conflict


def missing(db: Database, caseload: str, what: str, exc: CouchNotFound) -> str:
    """``what`` is not found, or the caseload's whole database (CouchDB's reason says which)."""
    if "database" in exc.reason.lower():
        return f"caseload {caseload} does not exist ({db.name}: {exc.reason})"
    return f"{what} in caseload {caseload}"


def read_many(db: Database, caseload: str, wanted: Sequence[tuple[str, Sequence[str]]],
              registry: Registry, *, attachments: bool = False) -> Iterator[Conflict]:
    """Conflicts for ``[(doc id, live leaf revisions), ...]``, ``BATCH`` documents a request.

    A leaf that is gone by now (the document changed after the view was read) is left out;
    the write-time check notices the changed leaf set.
    """
    for first in range(0, len(wanted), BATCH):
        chunk = wanted[first:first + BATCH]
        requests = [{"id": doc_id, "rev": rev} for doc_id, revs in chunk for rev in revs]
        found: dict[str, list[Doc]] = {doc_id: [] for doc_id, _ in chunk}
        for result in db.bulk_get(requests, revs=True, attachments=attachments or None):
            for item in result.get("docs", []):
                doc = item.get("ok")
                if isinstance(doc, dict):
                    found.setdefault(str(result["id"]), []).append(doc)
        for doc_id, leaves in found.items():
            yield make_conflict(caseload, doc_id, leaves, registry)


def common_ancestor(branches: Sequence[Branch]) -> str | None:
    """The newest revision on every branch's history, if the histories still meet."""
    if not branches:
        return None
    shared = set(branches[0].history)
    for branch in branches[1:]:
        shared &= set(branch.history)
    return max(shared, key=rev_key) if shared else None


def read_revision(db: Database, doc_id: str, rev: str) -> Doc | None:
    """The body of ``rev``, or None when compaction removed it."""
    for result in db.open_revs(doc_id, [rev]):
        if isinstance(result.get("ok"), dict) and not result["ok"].get("_deleted"):
            body: Doc = result["ok"]
            return body
    return None
