"""How conflict review prints for people (``--json`` prints the library's own objects)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import click

from carecouch.cli_support import plural
from carecouch.conflicts.apply import Outcome
from carecouch.conflicts.diff import Inspection
from carecouch.conflicts.finder import Found
from carecouch.conflicts.plan import Plan
from carecouch.conflicts.undo import UndoPlan

from .output import echo_table

WIDTH = 38


def short(value: Any, present: bool = True) -> str:
    if not present:
        return "(absent)"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False,
                                                           separators=(",", ":"))
    return text if len(text) <= WIDTH else text[:WIDTH - 3] + "..."


def _file(value: Any, present: bool = True) -> str:
    """An attachment: type, size and the start of its digest (enough to tell two apart)."""
    if not present or not isinstance(value, dict):
        return "(absent)"
    size = f" {value['length']} B" if value.get("length") is not None else ""
    return short(f"{value.get('content_type')}{size} {str(value.get('digest'))[4:12]}")


def age(seconds: int | None) -> str | None:
    if seconds is None:
        return None
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def print_found(found: Found) -> None:
    if found.items:
        echo_table(["CASELOAD", "DOCUMENT", "TYPE", "CLASS", "SUBJECT", "BRANCHES", "AGE",
                    "REVIEW", "ACTION"],
                   [[i.conflict.caseload, i.conflict.doc_id, i.conflict.record_type,
                     i.conflict.record_class, i.conflict.subject, len(i.conflict.branches),
                     age(i.age_seconds), i.decision.needs_review, i.decision.label]
                    for i in found.items], right=("BRANCHES", "AGE"))
        click.echo("")
        classes = ["exclusive", "append-only", "mergeable"]
        counts = found.counts()
        extra = sorted({k for c in counts.values() for k in c} - set(classes))
        echo_table(["CASELOAD", *(c.upper() for c in classes + extra), "TOTAL"],
                   [[cid, *(by.get(c, 0) for c in classes + extra), sum(by.values())]
                    for cid, by in sorted(counts.items())],
                   right=[c.upper() for c in classes + extra] + ["TOTAL"])
    review = sum(1 for i in found.items if i.decision.needs_review)
    click.echo(f"{plural(len(found.items), 'conflicted document')}, {review} need review"
               + (f"; {plural(len(found.errors), 'caseload')} unreadable" if found.errors
                  else ""))


def print_inspection(inspection: Inspection) -> None:
    c = inspection.conflict
    click.echo(f"{c.doc_id} in caseload {c.caseload}: {c.record_type or '?'} "
               f"({c.record_class or 'unknown class'}), subject {c.subject}, "
               f"{len(c.branches)} branches")
    if inspection.ancestor_rev is None:
        click.echo("common ancestor: none (the branches share no history)")
    elif inspection.ancestor is None:
        click.echo(f"common ancestor: {inspection.ancestor_rev} (its body is no longer held: "
                   "compacted)")
    else:
        click.echo(f"common ancestor: {inspection.ancestor_rev}")
    heads = [f"{b.rev[:14]}{' (winner)' if i == 0 else ''}"
             for i, b in enumerate(c.branches)]
    with_ancestor = inspection.ancestor is not None
    headers = ["", "SECTION", "FIELD", *(["ANCESTOR"] if with_ancestor else []), *heads]
    rows = []
    for row in inspection.rows:
        if not any(row.present) and not row.ancestor_present:
            continue
        shown = _file if row.section == "attachment" else short
        cells = [shown(v, p) for v, p in zip(row.values, row.present, strict=True)]
        anc = [short(row.ancestor, row.ancestor_present)] if with_ancestor else []
        rows.append(["*" if row.differs else "", row.section, row.name, *anc, *cells])
    echo_table(headers, rows)
    click.echo("(* differs between branches)")
    if inspection.provenance is None:
        click.echo("provenance: not checked (the device registry is for server admins)")
    else:
        for branch, verdict in zip(c.branches, inspection.provenance, strict=True):
            signer = "the bridge" if verdict.signer == "bridge" else f"device {verdict.signer}"
            said = (f"verified: signed by {signer}" if verdict.verified
                    else f"NOT VERIFIED ({verdict.provenance}: {verdict.reason})")
            click.echo(f"provenance of {branch.rev[:14]}: {said}")
    d = inspection.decision
    click.echo(f"policy: {d.label}: {d.reason}")


def print_plan(plan: Plan, *, err: bool = False) -> None:
    say = _say(err)
    c = plan.conflict
    say(f"{plan.doc_id} ({c.record_type}, {c.record_class}) in caseload {plan.caseload}: "
        f"{plan.method}")
    if plan.written is not None:
        say(f"  write merged revision {plan.written['_rev']} on branch {plan.kept_rev}")
        for choice in plan.choices:
            if choice.contested:
                say(f"    {choice.name} = {short(choice.value, choice.present)}  "
                    f"(from {choice.rev}, {choice.rule})")
        if plan.written.get("_attachments"):
            say(f"    attachments: {', '.join(sorted(plan.written['_attachments']))}")
    else:
        say(f"  keep {plan.kept_rev} as it is")
    for tomb in plan.tombstones:
        ids = tomb["_revisions"]["ids"]
        say(f"  delete {tomb['_revisions']['start'] - 1}-{ids[1]} (tombstone {tomb['_rev']})")
    files = len(plan.record.get("_attachments", {}))
    say(f"  resolution record {plan.resolution_id} keeps "
        f"{plural(len(plan.record['discarded']), 'discarded body', 'discarded bodies')}"
        + (f" and {plural(files, 'attached file')}" if files else ""))


def print_undo(plan: UndoPlan, *, err: bool = False) -> None:
    say = _say(err)
    say(f"undo {plan.undone['_id']} on {plan.doc_id} in caseload {plan.caseload}")
    for rev in plan.restored:
        say(f"  restore {rev}")
    for doc in plan.first:
        if doc.get("_deleted"):
            say(f"  delete the merged revision (tombstone {doc['_rev']})")
    for note in plan.notes:
        say(f"  note: {note}")
    if plan.record is not None:
        say(f"  undo record {plan.record['_id']}")


def print_outcomes(outcomes: Sequence[Outcome]) -> None:
    if outcomes:
        echo_table(["CASELOAD", "DOCUMENT", "METHOD", "STATUS", "RESOLUTION", "NOTE"],
                   [[o.plan.caseload, o.plan.doc_id, o.plan.method, o.status,
                     o.plan.resolution_id, o.message or None] for o in outcomes])


def _say(err: bool) -> Any:
    return lambda text: click.echo(text, err=err)
