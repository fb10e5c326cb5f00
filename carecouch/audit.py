"""The append-only audit trail in ``carecouch_audit`` (document shape: docs/decisions.md).

Every part of carecouch that must leave a trace (provisioning, the bridge, conflict review)
writes through :class:`AuditLog`, so entries look the same whoever wrote them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .clock import utc_now
from .couch import CouchClient, Doc
from .errors import CarecouchError
from .security import ensure_admin_only_db

AUDIT_DB = "carecouch_audit"


class AuditWriteFailed(CarecouchError):
    """CouchDB refused an audit entry (the operation it records must not be reported done)."""


@dataclass(frozen=True)
class AuditEvent:
    action: str
    subject: str
    details: Mapping[str, Any]


def audit_entry(action: str, actor: str, subject: str, details: Mapping[str, Any],
                at: str | None = None) -> Doc:
    """One entry; the ``_id`` starts with the time, so ``_all_docs`` lists entries in order."""
    at = at or utc_now()
    return {"_id": f"audit:{at}:{uuid.uuid4().hex}", "type": "audit", "action": action,
            "actor": actor, "at": at, "subject": subject, "details": dict(details)}


class AuditLog:
    """Writes audit entries as ``actor`` (the CouchDB or identity-provider user acting)."""

    def __init__(self, client: CouchClient, actor: str) -> None:
        self.client = client
        self.actor = actor
        self.db = client.db(AUDIT_DB)

    def ensure(self) -> bool:
        """Create the audit database (admin only) on first use; True if anything was written."""
        return ensure_admin_only_db(self.client, AUDIT_DB)

    def record(self, action: str, subject: str, details: Mapping[str, Any]) -> Doc:
        """Write one entry and return it."""
        return self.record_many([AuditEvent(action, subject, details)])[0]

    def record_many(self, events: Iterable[AuditEvent]) -> list[Doc]:
        """Write entries in one request; raise :class:`AuditWriteFailed` naming any refused."""
        docs = [audit_entry(e.action, self.actor, e.subject, e.details) for e in events]
        if not docs:
            return []
        refused = [r for r in self.db.bulk_docs(docs) if "error" in r]
        if refused:
            first = refused[0]
            raise AuditWriteFailed(
                f"CouchDB refused {len(refused)} audit entr{'y' if len(refused) == 1 else 'ies'}"
                f" ({first.get('error')}: {first.get('reason')})")
        return docs

    def entries(self, *, subject: str | None = None, action: str | None = None,
                since: str | None = None) -> list[Doc]:
        """Entries in time order, optionally only those about ``subject`` / of ``action``.

        Reads the whole trail (from ``since``, an ISO time): fine for review and tests; a view
        can replace it when the trail grows large.
        """
        if not self.db.exists():
            return []
        start = f"audit:{since}" if since else "audit:"
        rows = self.db.all_docs(startkey=start, endkey="audit:\ufff0",
                                include_docs=True)["rows"]
        docs: list[Doc] = [row["doc"] for row in rows if row.get("doc")]
        return [d for d in docs
                if (subject is None or d.get("subject") == subject)
                and (action is None or d.get("action") == action)]
