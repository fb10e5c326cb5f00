"""Break-glass access and its review, read from the audit trail (the one record of both).

The bridge writes a ``break_glass.issue`` entry whenever it grants emergency access; a
clinical lead reviews it (``carecouch audit review``), which writes a ``break_glass.review``
entry naming the issue entry. The trail is append-only, so a review is a new entry, and the
latest review of a grant is its outcome. Devices learn the outcome through the bridge and show
their grants as pending until then.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from .audit import AuditLog
from .couch import Doc
from .errors import CarecouchError

ISSUE = "break_glass.issue"
REVIEW = "break_glass.review"


class Outcome(StrEnum):
    PENDING = "pending"
    JUSTIFIED = "justified"
    NOT_JUSTIFIED = "not-justified"


class UnknownGrant(CarecouchError):
    """No break-glass grant with that audit entry id."""


@dataclass(frozen=True)
class Grant:
    id: str          # the audit entry of the issue
    at: str
    caseload: str
    user: str
    device: str
    expires_at: str
    justification: str
    review: Outcome
    reviewed_by: str | None = None
    reviewed_at: str | None = None
    note: str | None = None

    def to_json(self, *, private: bool = True) -> dict[str, Any]:
        """``private=False`` for the device: no justification or reviewer's note."""
        out: dict[str, Any] = {"id": self.id, "at": self.at, "caseload": self.caseload,
                               "user": self.user, "device": self.device,
                               "expires_at": self.expires_at, "review": str(self.review),
                               "reviewed_at": self.reviewed_at}
        if private:
            out.update(justification=self.justification, reviewed_by=self.reviewed_by,
                       note=self.note)
        return out


def grants(audit: AuditLog, *, since: str | None = None, user: str | None = None,
           device: str | None = None) -> list[Grant]:
    """Break-glass grants (issued at or after ``since``) with their latest review."""
    entries = audit.entries(since=since)
    reviews: dict[str, Doc] = {}
    for entry in entries:
        if entry.get("action") == REVIEW:
            reviews[str(entry["details"].get("issue"))] = entry  # time order: latest wins
    found = []
    for entry in entries:
        details = entry.get("details") or {}
        if entry.get("action") != ISSUE:
            continue
        if (user and details.get("user") != user) or (device and details.get("device") != device):
            continue
        review = reviews.get(str(entry["_id"]))
        rdetails = (review or {}).get("details") or {}
        found.append(Grant(
            id=str(entry["_id"]), at=str(entry["at"]), caseload=str(entry["subject"]),
            user=str(details.get("user")), device=str(details.get("device")),
            expires_at=str(details.get("expires_at")),
            justification=str(details.get("justification")),
            review=Outcome(rdetails["outcome"]) if review else Outcome.PENDING,
            reviewed_by=str(review["actor"]) if review else None,
            reviewed_at=str(review["at"]) if review else None,
            note=str(rdetails.get("note")) if review else None))
    return found


def review(audit: AuditLog, grant_id: str, outcome: Outcome, note: str) -> Grant:
    """Record the review of one grant; returns it as reviewed."""
    at = grant_id.split(":", 1)[1].rsplit(":", 1)[0] if grant_id.startswith("audit:") else None
    match = [g for g in grants(audit, since=at) if g.id == grant_id]
    if not match:
        raise UnknownGrant(f"no break-glass grant {grant_id!r} in the audit trail "
                           "(`carecouch audit break-glass` lists them with their ids)")
    grant = match[0]
    entry = audit.record(REVIEW, grant.caseload, {"issue": grant_id, "outcome": str(outcome),
                                                  "note": note, "user": grant.user,
                                                  "device": grant.device})
    return replace(grant, review=outcome, reviewed_by=audit.actor,
                   reviewed_at=str(entry["at"]), note=note)
