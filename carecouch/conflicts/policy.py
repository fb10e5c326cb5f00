"""What carecouch does with a conflict of each record class (docs/design.md, "Records").

- append-only: only identical duplicates are expected; they collapse to CouchDB's winner.
  Different content under one id is not something a rule can settle: review.
- mergeable: merged field by field from the change stamps (:mod:`.merge`), when the branches
  hold the same attachments; different attachments have no stamp to rank them: review.
- exclusive: never resolved automatically. The proposal for the supervisor is "first
  completion under a then-valid lease wins"; a human confirms it with ``resolve --keep``.
  The reason says what the branches hold: a record completed twice (the lease race, or on a
  cluster a copy that accepted a second completion before it received the first), or a
  completion beside a branch that still carries a lease.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from carecouch.records import Registry

from .branches import Branch, Conflict
from .errors import CannotResolve
from .merge import (
    Completion,
    FieldChoice,
    completions,
    identical,
    merge_fields,
    same_attachments,
)

COLLAPSE = "collapse"
MERGE = "merge"
REVIEW = "review"
# Attachments carry no change stamps: which branch's photo is current is a person's call.
DIFFERENT_ATTACHMENTS = ("the branches hold different attachments; keep one branch with "
                         "--keep (the others' attachments stay in the resolution record)")


@dataclass(frozen=True)
class Decision:
    action: str  # COLLAPSE, MERGE or REVIEW
    reason: str
    supervisory: bool = False  # exclusive records: a supervisor decides
    proposal: str | None = None  # the revision a reviewer is advised to keep
    choices: tuple[FieldChoice, ...] = field(default=(), compare=False)  # of a MERGE

    @property
    def needs_review(self) -> bool:
        return self.action == REVIEW

    @property
    def label(self) -> str:
        if self.action == REVIEW:
            return "supervisory review" if self.supervisory else "review"
        return "auto: duplicate" if self.action == COLLAPSE else "auto: merge"


def decide(conflict: Conflict, registry: Registry) -> Decision:
    if not conflict.conflicted:
        return Decision(REVIEW, "not conflicted")
    if conflict.record_type is None:
        return Decision(REVIEW, "not a record type the registry knows")
    if len({(b.get("type"), b.get("subject")) for b in conflict.branches}) > 1:
        return Decision(REVIEW, "the branches disagree on type or subject")
    spec = registry.get(conflict.record_type)
    if spec.record_class == "exclusive":
        return _exclusive(conflict, spec.terminal)
    if identical(conflict.branches):
        return Decision(COLLAPSE, "identical duplicates: the copies are collapsed")
    if spec.record_class == "append-only":
        return Decision(REVIEW, "an append-only record with different content on each branch;"
                        " choose the one to keep")
    if not same_attachments(conflict.branches):
        return Decision(REVIEW, DIFFERENT_ATTACHMENTS)
    try:
        choices = merge_fields(conflict.branches, spec.fields, registry.metadata_field)
    except CannotResolve as exc:
        return Decision(REVIEW, str(exc))
    return Decision(MERGE, "merged field by field: each field's latest stamped change wins",
                    choices=tuple(choices))


def _exclusive(conflict: Conflict, terminal: tuple[str, ...]) -> Decision:
    done = completions(conflict.branches, terminal)
    state = _exclusive_state(done, [b for b in conflict.branches
                                    if b.get("status") not in terminal])
    valid = [c for c in done if c.valid]
    if not valid:
        return Decision(REVIEW, f"exclusive record, {state}: no branch completed under a "
                        "valid lease", supervisory=True)
    first = valid[0]
    return Decision(REVIEW, f"exclusive record, {state}: first completion under a then-valid "
                    f"lease wins: keep {first.rev} ({first.completed_by} at "
                    f"{first.completed_at})", supervisory=True, proposal=first.rev)


def _exclusive_state(done: list[Completion], open_branches: list[Branch]) -> str:
    """What the branches of an exclusive record hold, for the supervisor."""
    if not done:
        return "completed on no branch"
    who = ", ".join(f"{c.completed_by} at {c.completed_at}" for c in done)
    state = f"completed {len(done)} times ({who})" if len(done) > 1 else f"completed by {who}"
    leases = [b.get("lease") for b in open_branches if isinstance(b.get("lease"), Mapping)]
    if leases:
        holders = ", ".join(f"{lease.get('holder')} until {lease.get('expires_at')}"
                            for lease in leases)
        return f"{state}, beside a branch that still carries a lease ({holders})"
    return f"{state}, open on another branch" if open_branches else state
