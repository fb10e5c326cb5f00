"""Turn a decision into the exact documents a resolution writes.

A plan holds (1) the append-only ``resolution`` record, with the full body of every revision
it discards (attachments included: :mod:`.attachments`), and (2) the revisions for one
``_bulk_docs`` with ``new_edits=false``: the merged body on one branch (for a merge) and a
tombstone on each other leaf shown. Nothing here reads the server or a clock (the time is
passed in), so ``--dry-run`` prints what a run writes.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from carecouch.couch import Doc
from carecouch.ddocs import canonical_json
from carecouch.records import Registry
from carecouch.revs import child

from . import attachments
from .branches import Branch, Conflict
from .errors import BadChoice, CannotResolve, NotConflicted
from .identity import Resolver
from .merge import FieldChoice, latest, merge_fields, same_attachments
from .policy import COLLAPSE, DIFFERENT_ATTACHMENTS, MERGE, Decision, decide

RESOLUTION_TYPE = "resolution"
AUTO_REASONS = {
    COLLAPSE: "carecouch conflicts auto: identical duplicates collapsed",
    MERGE: "carecouch conflicts auto: merged field by field, latest stamped change wins",
}


@dataclass
class Plan:
    conflict: Conflict
    method: str  # keep | merge | auto-duplicate | auto-merge | undo
    kept_rev: str
    record: Doc  # the resolution record
    written: Doc | None = None  # the merged revision
    tombstones: list[Doc] = field(default_factory=list)
    choices: list[FieldChoice] = field(default_factory=list)

    @property
    def caseload(self) -> str:
        return self.conflict.caseload

    @property
    def doc_id(self) -> str:
        return self.conflict.doc_id

    @property
    def resolution_id(self) -> str:
        return str(self.record["_id"])

    @property
    def writes(self) -> list[Doc]:
        return ([self.written] if self.written else []) + self.tombstones

    @property
    def result_rev(self) -> str:
        """The one live revision the document should have afterwards."""
        return str(self.written["_rev"]) if self.written else self.kept_rev

    @property
    def discarded_revs(self) -> list[str]:
        return [str(d["_rev"]) for d in self.record["discarded"]]

    def as_json(self) -> dict[str, Any]:
        return {"caseload": self.caseload, "doc": self.doc_id, "method": self.method,
                "record_class": self.conflict.record_class, "kept_rev": self.kept_rev,
                "written_rev": self.written["_rev"] if self.written else None,
                "deleted_revs": [_parent(t) for t in self.tombstones],
                "resolution": self.record, "bulk_docs": {"new_edits": False,
                                                          "docs": self.writes},
                "fields": [_choice_json(c) for c in self.choices]}


def _parent(doc: Mapping[str, Any]) -> str:
    revisions = doc["_revisions"]
    return f"{revisions['start'] - 1}-{revisions['ids'][1]}"


def _choice_json(choice: FieldChoice) -> dict[str, Any]:
    return {"field": choice.name, "from": choice.rev, "rule": choice.rule,
            "contested": choice.contested, "present": choice.present, "value": choice.value,
            "stamp": dict(choice.stamp) if choice.stamp else None}


def resolution_id(facts: Mapping[str, Any], resolver: Resolver) -> str:
    """``resolution:<resolver's account>:<uuid>``, the uuid from what the resolution does:
    the same resolution of the same leaves by the same resolver gets the same id, so a re-run
    after an interruption finds its record (409) instead of writing a second one. A
    resolution is append-only, so its id names the account writing it (append_only.js)."""
    digest = hashlib.sha256(canonical_json(dict(facts)).encode()).digest()
    return f"{RESOLUTION_TYPE}:{resolver.account}:{uuid.UUID(bytes=digest[:16], version=4)}"


def resolution_record(conflict: Conflict, *, method: str, kept_rev: str,
                      written_rev: str | None, discarded: Sequence[Mapping[str, Any]],
                      tombstoned: Sequence[str], reason: str, resolver: Resolver, now: str,
                      undoes: str | None = None, subject: str | None = None,
                      record_class: str | None = None) -> Doc:
    subject = subject or conflict.subject
    record_class = record_class or conflict.record_class
    if record_class is None or subject is None:
        raise CannotResolve(f"{conflict.doc_id} is not a clinical record the registry knows; "
                            "a server admin must repair it")
    facts = {"resolves": conflict.doc_id, "leaves": sorted(conflict.leaf_revs),
             "method": method, "kept_rev": kept_rev, "written_rev": written_rev,
             "tombstoned": sorted(tombstoned), "undoes": undoes}
    bodies, data = attachments.split(discarded)  # compaction takes attachments too
    record: Doc = {
        "_id": resolution_id(facts, resolver), "type": RESOLUTION_TYPE, "subject": subject,
        "author": resolver.user, "device": resolver.device, "at": now,
        "clock_offset_ms": resolver.clock_offset_ms, "resolves": conflict.doc_id,
        "record_class": record_class, "method": method, "kept_rev": kept_rev,
        "discarded": bodies, "reason": reason}
    if data:
        record[attachments.FIELD] = data
    if written_rev is not None:
        record["written_rev"] = written_rev
    if undoes is not None:
        record["undoes"] = undoes
    return record


def check_reason(reason: str) -> str:
    if not reason.strip():
        raise BadChoice("a reason is required: say why this resolution is right")
    return reason.strip()


def _resolvable(conflict: Conflict) -> None:
    if not conflict.conflicted:
        raise NotConflicted(f"{conflict.doc_id} has one live revision "
                            f"({conflict.winner.rev}); there is nothing to resolve")


def find_rev(conflict: Conflict, wanted: str) -> Branch:
    """A live leaf by its revision id, or by an unambiguous prefix of it."""
    matches = [b for b in conflict.branches if b.rev == wanted] or [
        b for b in conflict.branches if b.rev.startswith(wanted)]
    if len(matches) != 1:
        leaves = ", ".join(b.rev for b in conflict.branches)
        what = "is not a live revision" if not matches else "matches several revisions"
        raise BadChoice(f"{wanted} {what} of {conflict.doc_id} (live: {leaves})")
    return matches[0]


def plan_keep(conflict: Conflict, keep: str, *, reason: str, resolver: Resolver, now: str,
              method: str = "keep") -> Plan:
    """Keep one branch as it is; tombstone every other live leaf."""
    _resolvable(conflict)
    kept = find_rev(conflict, keep)
    others = [b for b in conflict.branches if b.rev != kept.rev]
    tombstones = [child(b.body, None) for b in others]
    record = resolution_record(
        conflict, method=method, kept_rev=kept.rev, written_rev=None,
        discarded=[b.body for b in others], tombstoned=[b.rev for b in others],
        reason=check_reason(reason), resolver=resolver, now=now)
    return Plan(conflict, method, kept.rev, record, None, tombstones)


def plan_merge(conflict: Conflict, registry: Registry, chosen: Mapping[str, str], *,
               reason: str, resolver: Resolver, now: str, method: str = "merge",
               choices: Sequence[FieldChoice] = ()) -> Plan:
    """Write one merged revision on CouchDB's winning branch; tombstone the other leaves.

    ``chosen`` maps fields to the revision to take them from; every other field that differs
    takes its latest stamped change. The branch written on is listed as discarded too: its
    body becomes an ancestor, which compaction removes.
    """
    _resolvable(conflict)
    if conflict.record_class != "mergeable" or conflict.record_type is None:
        raise BadChoice(f"{conflict.doc_id} is {conflict.record_class or 'not a known record'}"
                        ": only mergeable records can be merged; keep one branch with --keep")
    spec = registry.get(conflict.record_type)
    picks: dict[str, Branch] = {}
    for name, rev in chosen.items():
        if name not in spec.fields:
            raise BadChoice(f"a {conflict.record_type} has no field {name} (fields: "
                            f"{', '.join(sorted(spec.fields))})")
        picks[name] = find_rev(conflict, rev)
    if len({(b.get("type"), b.get("subject")) for b in conflict.branches}) > 1:
        raise CannotResolve("the branches disagree on type or subject; keep one with --keep")
    if not same_attachments(conflict.branches):
        raise BadChoice(f"{conflict.doc_id}: {DIFFERENT_ATTACHMENTS}")
    if picks or not choices:  # `choices`: the policy's merge, worked out already
        choices = merge_fields(conflict.branches, spec.fields, registry.metadata_field, picks)
    base = conflict.winner
    merged = merged_body(conflict, choices, registry.metadata_field, resolver)
    written = child(base.body, merged, attachments.inline(base.body))  # the same on all
    others = conflict.branches[1:]
    record = resolution_record(
        conflict, method=method, kept_rev=base.rev, written_rev=written["_rev"],
        discarded=[b.body for b in conflict.branches], tombstoned=[b.rev for b in others],
        reason=check_reason(reason), resolver=resolver, now=now)
    return Plan(conflict, method, base.rev, record, written,
                [child(b.body, None) for b in others], list(choices))


def merged_body(conflict: Conflict, choices: Sequence[FieldChoice], metadata_field: str,
                resolver: Resolver) -> Doc:
    """The merged record: envelope from the branches (the author is the resolver, who signs
    the merge), fields and their stamps from the choices. No clock and no host is read."""
    last = latest(conflict.branches)
    body: Doc = {"_id": conflict.doc_id, "type": conflict.winner.get("type"),
                 "subject": conflict.subject, "author": resolver.user,
                 "device": resolver.device, "at": last.get("at"),
                 "clock_offset_ms": last.get("clock_offset_ms")}
    stamps: Doc = {}
    for choice in choices:
        if choice.present:
            if choice.stamp is None:
                raise CannotResolve(f"field {choice.name} of {choice.rev} has no change stamp;"
                                    " choose another revision for it")
            body[choice.name] = choice.value
        if choice.stamp is not None:
            stamps[choice.name] = dict(choice.stamp)
    body[metadata_field] = stamps
    return body


def plan_auto(conflict: Conflict, registry: Registry, *, resolver: Resolver, now: str,
              decision: Decision | None = None) -> Plan | None:
    """The policy's resolution, or None when the conflict is left for review."""
    decision = decision or decide(conflict, registry)
    if decision.action == COLLAPSE:
        return plan_keep(conflict, conflict.winner.rev, reason=AUTO_REASONS[COLLAPSE],
                         resolver=resolver, now=now, method="auto-duplicate")
    if decision.action == MERGE:
        return plan_merge(conflict, registry, {}, reason=AUTO_REASONS[MERGE],
                          resolver=resolver, now=now, method="auto-merge",
                          choices=decision.choices)
    return None
