"""What carecouch does with a conflict of each record class (design.md, "Records").

- append-only: only identical duplicates are expected; they collapse to CouchDB's winner.
  Different content under one id is not something a rule can settle: review.
- mergeable: merged field by field from the change stamps (:mod:`.merge`), when the branches
  hold the same attachments; different attachments have no stamp to rank them: review.
- exclusive: never resolved automatically. The proposal for the supervisor is "first
  completion under a then-valid lease wins"; a human confirms it with ``resolve --keep``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from carecouch.records import Registry

from .branches import Conflict
from .errors import CannotResolve
from .merge import FieldChoice, completions, identical, merge_fields, same_attachments

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
    valid = [c for c in done if c.valid]
    if not valid:
        return Decision(REVIEW, "exclusive record: no branch completed under a valid lease",
                        supervisory=True)
    first = valid[0]
    return Decision(REVIEW, f"exclusive record: first completion under a then-valid lease wins:"
                    f" keep {first.rev} ({first.completed_by} at {first.completed_at})",
                    supervisory=True, proposal=first.rev)
