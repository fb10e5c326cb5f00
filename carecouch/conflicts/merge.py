"""Field-by-field merge of mergeable records, from their ``changed`` stamps.

Deterministic: the result depends only on the branches' bodies, never on the order they were
read in, the machine, or the clock. For each field the branch whose stamp ``{by, at}`` is
greatest wins, comparing the time (parsed, so ``...00Z`` equals ``...00.000Z``), then the
user, then the revision id (position, then id): a total order, so there is always exactly one
winner. The merged revision's ``at`` and ``clock_offset_ms`` come from the latest branch by the
same order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from carecouch.ddocs import canonical_json
from carecouch.revs import rev_key

from .branches import Branch
from .errors import CannotResolve

_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?Z$")
Instant = tuple[int, int]  # (whole seconds since the epoch, nanoseconds)


def parse_time(value: Any) -> Instant | None:
    """ISO 8601 UTC as the record rules accept it (common.js), to an exact comparable value."""
    match = _TIME.match(value) if isinstance(value, str) else None
    if not match:
        return None
    y, mo, d, h, mi, s = (int(p) for p in match.groups()[:6])
    try:
        moment = datetime(y, mo, d, h, mi, s)
    except ValueError:
        return None
    seconds = int((moment - datetime(1970, 1, 1)).total_seconds())
    return seconds, int((match.group(7) or "0").ljust(9, "0"))


@dataclass(frozen=True)
class FieldChoice:
    """Where one field of the merged record comes from."""

    name: str
    rev: str  # the branch it is taken from
    present: bool  # False: the winning branch removed the field
    value: Any
    stamp: Mapping[str, Any] | None
    contested: bool  # the branches disagree on this field
    rule: str  # "stamp" (latest change), "same" (all agree), "chosen" (--merge)


def stamp_key(stamp: Mapping[str, Any], rev: str) -> tuple[Instant, str, tuple[int, str]]:
    when = parse_time(stamp.get("at"))
    if when is None:
        raise CannotResolve(f"revision {rev} has a malformed change stamp {dict(stamp)}")
    return when, str(stamp.get("by")), rev_key(rev)


def latest(branches: Sequence[Branch]) -> Branch:
    """The branch edited last (device time, then author, then revision)."""
    def key(b: Branch) -> tuple[Instant, str, tuple[int, str]]:
        when = parse_time(b.get("at"))
        if when is None:
            raise CannotResolve(f"revision {b.rev} has no valid `at`")
        return when, str(b.get("author")), rev_key(b.rev)
    return max(branches, key=key)


def field_names(branches: Sequence[Branch], declared: Mapping[str, Any],
                metadata_field: str) -> list[str]:
    """The record's own fields that any branch holds or stamps, in name order."""
    names: set[str] = set()
    for branch in branches:
        names |= {n for n in branch.body if n in declared}
        stamps = branch.get(metadata_field)
        if isinstance(stamps, Mapping):
            names |= {n for n in stamps if n in declared}
    return sorted(names)


def _stamps(branch: Branch, metadata_field: str) -> Mapping[str, Any]:
    stamps = branch.get(metadata_field)
    if not isinstance(stamps, Mapping):
        raise CannotResolve(f"revision {branch.rev} has no `{metadata_field}` stamps; "
                            "merge it by hand")
    return stamps


def choose(name: str, branch: Branch, metadata_field: str, *, contested: bool,
           rule: str) -> FieldChoice:
    stamp = _stamps(branch, metadata_field).get(name)
    return FieldChoice(name=name, rev=branch.rev, present=name in branch.body,
                       value=branch.body.get(name),
                       stamp=dict(stamp) if isinstance(stamp, Mapping) else None,
                       contested=contested, rule=rule)


def same(a: Any, b: Any) -> bool:
    """Equal as JSON: Python's ``==`` alone calls ``1 == 1.0 == True``."""
    if a != b:
        return False
    if isinstance(a, str) or a is None:
        return True  # equal strings and None are the same JSON
    return canonical_json(a) == canonical_json(b)


def contested(name: str, branches: Sequence[Branch], metadata_field: str) -> bool:
    """True when the branches differ in the field's value, presence or stamp."""
    first = branches[0]
    stamp = _stamps(first, metadata_field).get(name)
    for other in branches[1:]:
        if ((name in other.body) != (name in first.body)
                or not same(other.body.get(name), first.body.get(name))
                or not same(_stamps(other, metadata_field).get(name), stamp)):
            return True
    return False


def merge_fields(branches: Sequence[Branch], declared: Mapping[str, Any],
                 metadata_field: str,
                 chosen: Mapping[str, Branch] | None = None) -> list[FieldChoice]:
    """One choice per field: ``chosen`` (field -> branch) first, else the latest stamp."""
    chosen = chosen or {}
    choices = []
    for name in field_names(branches, declared, metadata_field) + sorted(
            set(chosen) - set(field_names(branches, declared, metadata_field))):
        differs = contested(name, branches, metadata_field)
        if name in chosen:
            choices.append(choose(name, chosen[name], metadata_field, contested=differs,
                                  rule="chosen"))
            continue
        if not differs:
            choices.append(choose(name, branches[0], metadata_field, contested=False,
                                  rule="same"))
            continue
        stamped = [(b, _stamps(b, metadata_field).get(name)) for b in branches]
        for branch, stamp in stamped:
            # Who set an unstamped value, and when, is unknown: no rule can rank it.
            if name in branch.body and not isinstance(stamp, Mapping):
                raise CannotResolve(f"field {name} differs between branches and has no change "
                                    f"stamp on {branch.rev}; choose it by hand")
        candidates = [(stamp_key(s, b.rev), b) for b, s in stamped if isinstance(s, Mapping)]
        winner = max(candidates, key=lambda c: c[0])[1]
        choices.append(choose(name, winner, metadata_field, contested=True, rule="stamp"))
    return choices


def identical(branches: Sequence[Branch]) -> bool:
    """Every branch holds the same content and the same attachments (revision metadata
    aside): two copies of an observation with different ECG traces are not duplicates."""
    first = branches[0]
    return all(same(b.content, first.content) and b.attachments == first.attachments
               for b in branches[1:])


def same_attachments(branches: Sequence[Branch]) -> bool:
    return all(b.attachments == branches[0].attachments for b in branches[1:])


@dataclass(frozen=True)
class Completion:
    rev: str
    completed_by: str
    completed_at: str
    valid: bool  # inside the lease it was made under


def completions(branches: Sequence[Branch], terminal: Sequence[str]) -> list[Completion]:
    """The completed branches of an exclusive record, first completion first."""
    found = []
    for branch in branches:
        if branch.get("status") not in terminal:
            continue
        done = parse_time(branch.get("completed_at"))
        lease = branch.get("lease")
        valid = False
        if done is not None and isinstance(lease, Mapping):
            granted, expires = parse_time(lease.get("granted_at")), parse_time(
                lease.get("expires_at"))
            valid = (granted is not None and expires is not None
                     and granted <= done <= expires
                     and lease.get("holder") == branch.get("completed_by"))
        found.append((done or (2**62, 0), str(branch.get("completed_by")), rev_key(branch.rev),
                      Completion(branch.rev, str(branch.get("completed_by")),
                                 str(branch.get("completed_at")), valid)))
    return [item[-1] for item in sorted(found, key=lambda item: item[:3])]
