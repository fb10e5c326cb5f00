"""``carecouch conflicts``: find, inspect, resolve and undo conflicted records (clinical admins).

Thin: decisions live in :mod:`carecouch.conflicts`; this module parses options, asks for
confirmation and prints. Runs as COUCHDB_USER: a server admin, or a resolver's own account.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from carecouch import prompts
from carecouch.cli_support import plural
from carecouch.clock import utc_now
from carecouch.conflicts.apply import AuditSink, Outcome, OutcomeStatus, apply_plans
from carecouch.conflicts.auto import plan_caseloads
from carecouch.conflicts.branches import read_conflict
from carecouch.conflicts.diff import inspect
from carecouch.conflicts.errors import BadChoice
from carecouch.conflicts.finder import caseload_scope, find_conflicts
from carecouch.conflicts.identity import current_resolver
from carecouch.conflicts.plan import Plan, plan_keep, plan_merge
from carecouch.conflicts.undo import apply_undo, plan_undo
from carecouch.errors import CouchForbidden, CouchUnauthorized
from carecouch.ids import InvalidCaseloadId, caseload_db, check_caseload_id
from carecouch.parallel import DEFAULT_WORKERS
from carecouch.records import load_registry
from carecouch.signer_keys import signer_keys

from .conflicts_render import (
    print_found,
    print_inspection,
    print_outcomes,
    print_plan,
    print_undo,
)
from .context import AppContext, pass_app
from .errors import BadUsage, CommandFailed, unread
from .output import echo_json, json_option, note, progress, quiet_option


def _caseload(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    try:
        if isinstance(value, tuple):
            return tuple(check_caseload_id(v) for v in value)
        return check_caseload_id(value)
    except InvalidCaseloadId as exc:
        raise BadUsage(str(exc)) from exc


def _doc_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    # Ids that start with "_" are CouchDB's own (_all_docs, _design/...): never a record.
    if not value or value.startswith("_"):
        raise BadUsage(f"{value!r} is not a record id (such as care_plan:5f0c...)")
    return value


doc_argument = click.argument("doc_id", callback=_doc_id)
caseloads_option = click.option(
    "--caseload", "caseloads", multiple=True, callback=_caseload, metavar="ID",
    help="Only this caseload (repeatable). Default: every active caseload in the registry, "
         "or, for an account that cannot read it, the caseloads it is a member of.")
caseload_option = click.option("--caseload", required=True, callback=_caseload, metavar="ID",
                               help="The caseload that holds the record.")
yes_option = click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
dry_run_option = click.option("--dry-run", is_flag=True,
                              help="Print what would be written; write nothing.")
reason_option = click.option("--reason", required=True,
                             help="Why: kept in the resolution record and the audit trail.")
workers_option = click.option("--workers", type=click.IntRange(1, 64), default=DEFAULT_WORKERS,
                              show_default=True, help="Caseloads read at once.")


@contextmanager
def _usage() -> Iterator[None]:
    try:
        yield
    except BadChoice as exc:
        raise BadUsage(str(exc)) from exc


def _confirm(question: str) -> None:
    prompts.confirm(question, "not confirmed; nothing was written")


def _audit(app: AppContext) -> AuditSink:
    return AuditSink(app.client, app.client.user or "anonymous")


@click.group()
def conflicts() -> None:
    """Find, inspect, resolve and undo conflicted clinical records.

    Resolving needs the carecouch:resolver role (the server enforces it). Every resolution
    writes an append-only resolution record holding the full body of each revision it
    discards, so nothing is lost to compaction and every resolution can be undone.
    See docs/conflicts.md.
    """


@conflicts.command(name="list")
@caseloads_option
@workers_option
@json_option
@quiet_option
@pass_app
def list_(app: AppContext, caseloads: tuple[str, ...], workers: int, as_json: bool,
          quiet: bool) -> None:
    """List conflicted records across caseloads, exclusive records first.

    Shows type, class, subject, number of branches, age (since the newest conflicting edit),
    whether it needs review and what `conflicts auto` would do; then counts per caseload and
    class. Reads each caseload's conflicts view, never every document.
    """
    registry = load_registry()
    scope = caseload_scope(app.client, caseloads)
    with progress(len(scope), "reading caseloads", quiet=quiet) as tick:
        found = find_conflicts(app.client, scope, registry, now=utc_now(), workers=workers,
                               tick=tick)
    if as_json:
        echo_json({"conflicts": [i.as_json() for i in found.items], "counts": found.counts(),
                   "total": len(found.items), "caseloads": scope, "errors": found.errors,
                   "needs_review": sum(1 for i in found.items if i.decision.needs_review)})
    else:
        print_found(found)
    for caseload, error in found.errors.items():
        note(f"caseload {caseload} not read: {error}")
    if found.errors:
        raise unread(found.errors)


@conflicts.command()
@doc_argument
@caseload_option
@json_option
@pass_app
def show(app: AppContext, doc_id: str, caseload: str, as_json: bool) -> None:
    """Show DOC_ID's branches side by side with a field-level diff.

    Each branch with its author, device, device time and server-offset (and the server time
    they give), lease details for exclusive records, change stamps for mergeable ones, and
    the common ancestor while CouchDB still holds it; then what the policy proposes.
    """
    registry = load_registry()
    db = app.client.db(caseload_db(caseload))
    conflict = read_conflict(db, caseload, doc_id, registry)
    try:
        keys = signer_keys(app.client)
    except (CouchUnauthorized, CouchForbidden):
        keys = None  # a resolver's desk account cannot read the device registry
    inspection = inspect(db, conflict, registry, keys)
    if as_json:
        echo_json(inspection.as_json())
        return
    print_inspection(inspection)
    if not conflict.conflicted:
        note(f"{doc_id} is not conflicted")


def _merge_choices(values: tuple[str, ...]) -> dict[str, str]:
    choices: dict[str, str] = {}
    for value in values:
        name, sep, rev = value.partition("=")
        if not sep or not name or not rev:
            raise BadUsage(f"--merge takes FIELD=REV, not {value!r}")
        choices[name] = rev
    return choices


@conflicts.command()
@doc_argument
@caseload_option
@click.option("--keep", metavar="REV", help="Keep this branch as it is; delete the others.")
@click.option("--merge", "merges", multiple=True, metavar="FIELD=REV",
              help="Mergeable records: take FIELD from branch REV (repeatable); other fields "
                   "that differ take their latest stamped change.")
@reason_option
@yes_option
@dry_run_option
@json_option
@pass_app
def resolve(app: AppContext, doc_id: str, caseload: str, keep: str | None,
            merges: tuple[str, ...], reason: str, yes: bool, dry_run: bool,
            as_json: bool) -> None:
    """Resolve DOC_ID: keep one branch (--keep) or merge fields (--merge).

    Writes the resolution record first (every discarded body, you, the reason, the time),
    then the result on one branch and a deletion of every other leaf in one request. Stops,
    writing nothing, if the record changed since it was read; a revision arriving during the
    write is left live. REV may be a unique prefix of a revision id.
    """
    if bool(keep) == bool(merges):
        raise BadUsage("give either --keep REV or --merge FIELD=REV (one or more)")
    registry = load_registry()
    resolver = current_resolver(app.client)
    conflict = read_conflict(app.client.db(caseload_db(caseload)), caseload, doc_id, registry,
                             attachments=True)
    with _usage():
        if keep:
            plan = plan_keep(conflict, keep, reason=reason, resolver=resolver, now=utc_now())
        else:
            plan = plan_merge(conflict, registry, _merge_choices(merges), reason=reason,
                              resolver=resolver, now=utc_now())
    if dry_run:
        if as_json:
            echo_json(plan.as_json())
        else:
            print_plan(plan)
        return
    if not yes:
        print_plan(plan, err=True)
        _confirm("Write this resolution?")
    audit = _audit(app)
    outcome = apply_plans(app.client, caseload, [plan], audit=audit)[0]
    _report_one(outcome, audit, as_json)


def _report_one(outcome: Outcome, audit: AuditSink, as_json: bool) -> None:
    if as_json:
        echo_json({**outcome.as_json(), "audit_warning": audit.warning})
    elif outcome.status == OutcomeStatus.RESOLVED:
        click.echo(f"resolved {outcome.plan.doc_id}: {outcome.plan.method}, "
                   f"resolution {outcome.plan.resolution_id}")
    if audit.warning:
        note(f"warning: {audit.warning}")
    if outcome.status != OutcomeStatus.RESOLVED:
        raise CommandFailed(f"{outcome.plan.doc_id}: {outcome.message}")


@conflicts.command()
@caseloads_option
@dry_run_option
@yes_option
@workers_option
@json_option
@quiet_option
@pass_app
def auto(app: AppContext, caseloads: tuple[str, ...], dry_run: bool, yes: bool,
         workers: int, as_json: bool, quiet: bool) -> None:
    """Resolve what policy allows; leave the rest for review.

    Append-only records: identical duplicates collapse. Mergeable records: merged field by
    field from their change stamps, deterministically. Exclusive records: never; the plan
    proposes "first completion under a then-valid lease wins" for a supervisor to confirm
    with `conflicts resolve --keep`. --dry-run --json prints every document it would write.
    """
    registry = load_registry()
    resolver = current_resolver(app.client)
    scope = caseload_scope(app.client, caseloads)
    with progress(len(scope), "reading caseloads", quiet=quiet) as tick:
        planned = plan_caseloads(app.client, scope, registry, resolver=resolver,
                                 now=utc_now(), workers=workers, tick=tick)
    plans, review = planned.plans, planned.review
    for caseload, error in planned.errors.items():
        note(f"caseload {caseload} not read: {error}")
    if dry_run:
        _report_plans(plans, review, as_json, planned.errors)
        if planned.errors:
            raise unread(planned.errors)
        return
    if plans and not yes:
        note(f"{plural(len(plans), 'conflict')} to resolve automatically, {len(review)} left "
             "for review")
        _confirm(f"Resolve {plural(len(plans), 'conflict')}?")
    audit = _audit(app)
    outcomes: list[Outcome] = []
    with progress(len(plans), "resolving", quiet=quiet) as tick:
        for caseload in scope:
            mine = [p for p in plans if p.caseload == caseload]
            outcomes += apply_plans(app.client, caseload, mine, audit=audit, tick=tick)
    failed = [o for o in outcomes if o.status != OutcomeStatus.RESOLVED]
    if as_json:
        echo_json({"dry_run": False, "outcomes": [o.as_json() for o in outcomes],
                   "review": review, "audit_warning": audit.warning,
                   "errors": planned.errors})
    else:
        print_outcomes(outcomes)
        _print_review(review)
        click.echo(f"{len(outcomes) - len(failed)} resolved, {len(failed)} not, "
                   f"{len(review)} left for review")
    if audit.warning:
        note(f"warning: {audit.warning}")
    if failed:
        were = "was" if len(failed) == 1 else "were"
        raise CommandFailed(f"{plural(len(failed), 'conflict')} {were} not resolved (see above)")
    if planned.errors:
        raise unread(planned.errors)


def _report_plans(plans: list[Plan], review: list[dict[str, Any]], as_json: bool,
                  errors: dict[str, str]) -> None:
    if as_json:
        echo_json({"dry_run": True, "plans": [p.as_json() for p in plans], "review": review,
                   "errors": errors})
        return
    for plan in plans:
        print_plan(plan)
    _print_review(review)
    click.echo(f"{len(plans)} would be resolved, {len(review)} left for review (dry run)")
    note("dry run: nothing was written; --json prints every document it would write")


def _print_review(review: list[dict[str, Any]]) -> None:
    for item in review:
        click.echo(f"review: {item['caseload']} {item['doc']} ({item['class']}): "
                   f"{item['reason']}")


@conflicts.command()
@click.argument("resolution_id")
@caseload_option
@reason_option
@yes_option
@dry_run_option
@json_option
@pass_app
def undo(app: AppContext, resolution_id: str, caseload: str, reason: str, yes: bool,
         dry_run: bool, as_json: bool) -> None:
    """Undo RESOLUTION_ID: restore the revisions it discarded, as live branches again.

    Records the undo as a resolution of its own. A branch edited since the resolution is
    left as it is and reported.
    """
    registry = load_registry()
    resolver = current_resolver(app.client)
    with _usage():
        plan = plan_undo(app.client, caseload, resolution_id, registry, reason=reason,
                         resolver=resolver, now=utc_now())
    if plan.record is None:
        if as_json:
            echo_json({**plan.as_json(), "dry_run": dry_run, "done": False})
        else:
            print_undo(plan)
            click.echo("nothing to undo: every discarded revision is live or cannot be "
                       "restored")
        return
    if dry_run:
        if as_json:
            echo_json({**plan.as_json(), "dry_run": True})
        else:
            print_undo(plan)
        return
    if not yes:
        print_undo(plan, err=True)
        _confirm("Restore these revisions?")
    audit = _audit(app)
    apply_undo(app.client, plan, audit=audit)
    if as_json:
        echo_json({**plan.as_json(), "dry_run": False, "done": True,
                   "audit_warning": audit.warning})
    else:
        click.echo(f"undid {plan.undone['_id']}: restored "
                   f"{plural(len(plan.restored), 'revision')} of "
                   f"{plan.doc_id} (record {plan.record['_id']})")
        for item in plan.notes:
            note(f"note: {item}")
    if audit.warning:
        note(f"warning: {audit.warning}")
