"""Writes the server refused, kept with the server's reason until a person or a recovery acts.

A refused revision is never dropped: its row keeps the server's ``error`` and ``reason`` and
the full body of the refused revision, sealed like every other body (a validation function's
message may quote clinical content). The local revision itself stays in the tree until it is
retried or discarded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from carecouch.clock import utc_now
from carecouch.records import refusal_code

from ..errors import RejectionNotFound
from .documents import Doc, LocalDatabase


class RejectionState(StrEnum):
    """Where a refused write stands on the device."""

    OPEN = "open"            # refused; waiting for a way out
    RETRIED = "retried"      # re-applied on the server's revision, to be pushed again
    DISCARDED = "discarded"  # the refused branch taken out of the device's tree
    CORRECTED = "corrected"  # discarded for a new record carrying its content (resolved_by)


@dataclass(frozen=True)
class Rejection:
    """One refused write. ``code`` is the part of ``reason`` before ``": "`` (our
    validation functions throw ``{forbidden: "<code>: <message>"}``)."""

    database: str
    doc_id: str
    rev: str
    state: str
    recorded_at: str
    error: str
    reason: str
    doc: Doc
    resolved_by: str | None = None

    @property
    def code(self) -> str:
        return refusal_code(self.reason)

    @property
    def recovery(self) -> str | None:
        """The documented recovery for this code, if there is one (docs/device.md)."""
        return "reread" if self.code.endswith(".reread") else None

    def to_json(self) -> dict[str, Any]:
        return {"database": self.database, "id": self.doc_id, "rev": self.rev,
                "state": self.state, "recorded_at": self.recorded_at, "error": self.error,
                "reason": self.reason, "code": self.code, "recovery": self.recovery,
                "resolved_by": self.resolved_by}


class Rejections:
    """The rejections of one local database."""

    def __init__(self, db: LocalDatabase) -> None:
        self.db = db

    def record(self, doc: Doc, error: str, reason: str) -> None:
        """Keep a refusal of ``doc`` (a full revision as it was pushed); re-recording the
        same revision refreshes the reason and reopens it."""
        doc_id, rev = str(doc["_id"]), str(doc["_rev"])
        sealed = self.db.store.sealer.seal(
            json.dumps({"error": error, "reason": reason, "doc": doc},
                       separators=(",", ":")).encode(), self.db.name, "rejection", doc_id, rev)
        self.db.conn.execute(
            "INSERT OR REPLACE INTO rejections (db, doc_id, rev, state, recorded_at, "
            "resolved_by, sealed) VALUES (?, ?, ?, 'open', ?, NULL, ?)",
            (self.db.id, doc_id, rev, utc_now(), sealed))

    def list(self, *, state: str | None = RejectionState.OPEN) -> list[Rejection]:
        sql = ("SELECT doc_id, rev, state, recorded_at, resolved_by, sealed FROM rejections "
               "WHERE db = ?")
        params: tuple[Any, ...] = (self.db.id,)
        if state is not None:
            sql += " AND state = ?"
            params += (state,)
        return [self._unseal(*row) for row in self.db.conn.execute(sql + " ORDER BY recorded_at",
                                                                   params)]

    def count(self, state: str = RejectionState.OPEN) -> int:
        row = self.db.conn.execute("SELECT count(*) FROM rejections WHERE db = ? AND state = ?",
                                   (self.db.id, state)).fetchone()
        return int(row[0])

    def get(self, doc_id: str, rev: str | None = None) -> Rejection:
        """The open rejection of ``doc_id`` (the latest one unless ``rev`` names it)."""
        found = [r for r in self.list() if r.doc_id == doc_id and rev in (None, r.rev)]
        if not found:
            raise RejectionNotFound(f"no open rejected write of {doc_id!r} in {self.db.name}")
        return found[-1]

    def resolve(self, rejection: Rejection, state: str, resolved_by: str | None = None) -> None:
        self.db.conn.execute(
            "UPDATE rejections SET state = ?, resolved_by = ? WHERE db = ? AND doc_id = ? AND "
            "rev = ?", (state, resolved_by, self.db.id, rejection.doc_id, rejection.rev))

    def _unseal(self, doc_id: str, rev: str, state: str, recorded_at: str,
                resolved_by: str | None, sealed: bytes) -> Rejection:
        raw = json.loads(self.db.store.sealer.open(sealed, self.db.name, "rejection", doc_id,
                                                   rev))
        return Rejection(self.db.name, doc_id, rev, state, recorded_at, str(raw["error"]),
                         str(raw["reason"]), raw["doc"], resolved_by)
