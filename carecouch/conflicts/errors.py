"""Errors of conflict review; each ``str`` is one line a clinical admin can act on."""

from __future__ import annotations

from carecouch.errors import CarecouchError


class ConflictReviewError(CarecouchError):
    """Base of the errors below."""


class RecordNotFound(ConflictReviewError):
    """The document (or resolution record) does not exist in the caseload, or the caseload
    itself does not."""


class NotConflicted(ConflictReviewError):
    """The document has a single live revision: there is nothing to resolve."""


class BadChoice(ConflictReviewError, ValueError):
    """What the admin asked for does not fit the conflict (an unknown revision, a merge of an
    append-only record, a field the type does not have); the CLI reports it as bad usage."""


class CannotResolve(ConflictReviewError):
    """The record class or the branches rule the requested resolution out."""


class DocumentChanged(ConflictReviewError):
    """The document's live revisions are not the ones shown: nothing was clobbered."""


class ResolutionRefused(ConflictReviewError, PermissionError):
    """The server refused to let this user resolve (no resolver role, not a member)."""
