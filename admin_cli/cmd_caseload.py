"""``carecouch caseload``: provision caseload databases (for IT).

Thin: every decision is in :mod:`carecouch.provisioning`; this module parses options and prints.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from carecouch import prompts
from carecouch.caseload_status import CaseloadStatus, fill, registered, show_caseload
from carecouch.cli_support import plural
from carecouch.config import COUCH_DIR_VARIABLE
from carecouch.ids import InvalidCaseloadId, caseload_db, check_caseload_id
from carecouch.manifest import load_manifest
from carecouch.parallel import DEFAULT_WORKERS
from carecouch.provisioning import Plan, Provisioner
from carecouch.registry import STATUSES, CaseloadState

from .context import AppContext, pass_app
from .errors import BadUsage, CommandFailed
from .output import echo_json, echo_table, human_size, json_option, note, progress, quiet_option

couch_dir_option = click.option(
    "--couch-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
    envvar=COUCH_DIR_VARIABLE, default=None,
    help="The couch/ directory holding design_docs/ and validate_functions/ "
         "(default: the project's own).")
workers_option = click.option(
    "--workers", type=click.IntRange(1, 64), default=DEFAULT_WORKERS, show_default=True,
    help="Caseload databases worked on at once.")


def _checked_id(ctx: click.Context, param: click.Parameter, value: str) -> str:
    # Checked before anything else (settings, server): a typo is bad usage, exit 2.
    try:
        return check_caseload_id(value)
    except InvalidCaseloadId as exc:
        raise BadUsage(str(exc)) from exc


caseload_id_argument = click.argument("caseload_id", metavar="ID", callback=_checked_id)


def _provisioner(app: AppContext, couch_dir: Path | None = None,
                 workers: int = DEFAULT_WORKERS) -> Provisioner:
    return Provisioner(app.client, couch_dir=couch_dir, workers=workers)


def _plan_json(plan: Plan) -> dict[str, Any]:
    return {"id": plan.id, "db": caseload_db(plan.id), "actions": plan.actions,
            "steps": [kind for kind, _ in plan.steps], "note": plan.note,
            "changed": plan.changed}


@click.group()
def caseload() -> None:
    """Create, update, archive and destroy caseload databases.

    A caseload id is 1-48 lowercase letters, digits and '-', starting and ending with a letter
    or digit; its database is caseload_<id> and its members hold the role caseload:<id>.
    """


@caseload.command()
@caseload_id_argument
@click.option("--name", help="Human name (default: the id, or the archived caseload's name).")
@click.option("--team", help="The team that works the caseload.")
@couch_dir_option
@json_option
@pass_app
def create(app: AppContext, caseload_id: str, name: str | None, team: str | None,
           couch_dir: Path | None, as_json: bool) -> None:
    """Create caseload ID: database, design documents, security, registry record.

    Also restores an archived caseload, and finishes a create that was interrupted.
    """
    plan = _provisioner(app, couch_dir).create(caseload_id, name=name, team=team)
    if as_json:
        echo_json(_plan_json(plan))
        return
    db = caseload_db(plan.id)
    if "unarchive" in plan.actions:
        click.echo(f"restored archived caseload {plan.id} ({db}); members have access again")
    elif plan.events and "existing_db" in plan.events[0].details:
        click.echo(f"created caseload {plan.id} ({db}), finishing an interrupted create")
    else:
        click.echo(f"created caseload {plan.id} ({db})")


@caseload.command()
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing.")
@couch_dir_option
@workers_option
@json_option
@quiet_option
@pass_app
def apply(app: AppContext, manifest: Path, dry_run: bool, couch_dir: Path | None,
          workers: int, as_json: bool, quiet: bool) -> None:
    """Provision every caseload listed in MANIFEST (.yaml or .csv; see docs/provisioning.md).

    Creates what is missing, upgrades outdated design documents in place, updates names and
    teams, re-asserts security that drifted. A re-run with nothing changed writes nothing.
    Never changes a status: archived caseloads stay archived, destroyed ones are skipped.
    """
    specs = load_manifest(manifest, source=str(manifest))
    provisioner = _provisioner(app, couch_dir, workers)
    _ = provisioner.desired  # a broken couch directory fails before any request
    with progress(len(specs), "checking caseloads", quiet=quiet) as tick:
        plans = provisioner.apply(specs, dry_run=True, observe_tick=tick)
    if not dry_run:
        changed = [p for p in plans if p.changed]
        with progress(len(changed), "provisioning", quiet=quiet) as tick:
            provisioner.execute(changed, tick=tick)
    _report_apply(plans, dry_run, as_json)


# action -> (what a dry run would do, what was done)
_LABELS = {
    "create": ("create", "created"),
    "upgrade": ("upgrade design docs", "upgraded"),
    "update": ("update name/team", "updated"),
    "security": ("re-assert security", "security re-asserted"),
    "archive": ("archive", "archived"),
    "unarchive": ("unarchive", "unarchived"),
    "record": ("rewrite registry record", "registry record rewritten"),
}


def _label(action: str, dry_run: bool) -> str:
    would, done = _LABELS.get(action, (action, action))
    return would if dry_run else done


def _report_apply(plans: Sequence[Plan], dry_run: bool, as_json: bool) -> None:
    counts = Counter(a for p in plans for a in p.actions)
    unchanged = sum(1 for p in plans if not p.changed)
    if as_json:
        echo_json({"dry_run": dry_run, "caseloads": [_plan_json(p) for p in plans],
                   "summary": {**counts, "unchanged": unchanged}})
        return
    rows = [[p.id, ", ".join(_label(a, dry_run) for a in p.actions), p.note]
            for p in plans if p.changed or p.note]
    if rows:
        echo_table(["ID", "PLAN" if dry_run else "DONE", "NOTE"], rows)
    parts = [f"{n} {_label(a, dry_run)}" for a, n in sorted(counts.items())]
    parts.append(f"{unchanged} unchanged")
    tail = "" if counts else " - nothing to write"
    click.echo(f"{plural(len(plans), 'caseload')}{' (dry run)' if dry_run else ''}: "
               f"{', '.join(parts)}{tail}")
    if dry_run:
        note("dry run: nothing was written")


@caseload.command(name="list")
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES),
              help="Only caseloads with this status (repeatable).")
@couch_dir_option
@workers_option
@json_option
@quiet_option
@pass_app
def list_(app: AppContext, statuses: tuple[str, ...], couch_dir: Path | None, workers: int,
          as_json: bool, quiet: bool) -> None:
    """List caseloads: documents, size, conflicted documents, design-document version."""
    desired = _provisioner(app, couch_dir).desired
    rows = registered(app.client, statuses=statuses)
    with progress(len(rows), "reading caseloads", quiet=quiet) as tick:
        fill(app.client, rows, desired, workers=workers, tick=tick)
    if as_json:
        echo_json([r.as_json() for r in rows])
        return
    if not rows:
        note("no caseloads")
        return
    echo_table(["ID", "NAME", "TEAM", "STATUS", "DOCS", "SIZE", "CONFLICTED", "DESIGN"],
               [[r.id, r.name, r.team, _status_text(r), r.doc_count, human_size(r.size),
                 r.conflicted_docs, _design_text(r)] for r in rows],
               right=("DOCS", "SIZE", "CONFLICTED"))


def _status_text(row: CaseloadStatus) -> str:
    if row.error:
        return f"{row.status} (unreadable: {row.error})"
    if row.status in (CaseloadState.ACTIVE, CaseloadState.ARCHIVED) and not row.db_exists:
        return f"{row.status} (database missing)"
    if row.security_ok is False:
        return f"{row.status} (security drifted)"
    return row.status


def _design_text(row: CaseloadStatus) -> str | None:
    if not row.db_exists:
        return None
    if row.design_version is None:
        return "missing"
    return f"{row.design_version} {'current' if row.design_current else 'outdated'}"


@caseload.command()
@caseload_id_argument
@couch_dir_option
@json_option
@pass_app
def show(app: AppContext, caseload_id: str, couch_dir: Path | None, as_json: bool) -> None:
    """Show caseload ID: registry record, database, security, design documents."""
    row = show_caseload(app.client, caseload_id, _provisioner(app, couch_dir).desired)
    if as_json:
        echo_json(row.as_json())
        return
    members = (row.security or {}).get("members", {}).get("roles") if row.security else None
    fields: list[tuple[str, Any]] = [
        ("id", row.id), ("name", row.name), ("team", row.team), ("status", _status_text(row)),
        ("database", row.db if row.db_exists else f"{row.db} (missing)"),
        ("documents", row.doc_count), ("size", human_size(row.size)),
        ("conflicted documents", row.conflicted_docs),
        ("member roles", ", ".join(members) if members else None),
        ("created", row.created_at), ("updated", row.updated_at)]
    fields += [(f"design {ddoc_id}",
                f"{(info['version'] or '?')[:8]} {'current' if info['current'] else 'outdated'}")
               for ddoc_id, info in sorted(row.design_docs.items())]
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        click.echo(f"{key.ljust(width)}  {'-' if value is None else value}")


@caseload.command()
@caseload_id_argument
@json_option
@pass_app
def archive(app: AppContext, caseload_id: str, as_json: bool) -> None:
    """Remove member access to caseload ID; keep its data (undo with `unarchive`)."""
    plan = _provisioner(app).archive(caseload_id)
    if as_json:
        echo_json(_plan_json(plan))
    elif "archive" in plan.actions:
        click.echo(f"archived caseload {plan.id}: members have no access, the data is kept")
    else:
        click.echo(f"caseload {plan.id} was already archived")


@caseload.command()
@caseload_id_argument
@couch_dir_option
@json_option
@pass_app
def unarchive(app: AppContext, caseload_id: str, couch_dir: Path | None,
              as_json: bool) -> None:
    """Give members access to archived caseload ID again."""
    plan = _provisioner(app, couch_dir).unarchive(caseload_id)
    if as_json:
        echo_json(_plan_json(plan))
    elif "unarchive" in plan.actions:
        click.echo(f"restored caseload {plan.id}: members have access again")
    else:
        click.echo(f"caseload {plan.id} was not archived")


@caseload.command()
@caseload_id_argument
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; delete nothing.")
@json_option
@pass_app
def destroy(app: AppContext, caseload_id: str, yes: bool, dry_run: bool,
            as_json: bool) -> None:
    """Delete caseload ID's database and every record in it. Cannot be undone.

    Asks you to type the id unless --yes is given. The registry keeps the caseload, with
    status destroyed.
    """
    provisioner = _provisioner(app)
    preview = provisioner.destroy(caseload_id, dry_run=True)
    if preview.changed and not dry_run and not yes:
        docs = "" if preview.doc_count is None else f" ({plural(preview.doc_count, 'document')})"
        note(f"This deletes database {preview.db}{docs} for good.")
        typed = prompts.typed("Type the caseload id to confirm")
        if typed.strip() != preview.id:
            raise CommandFailed(f"not confirmed; caseload {preview.id} was not destroyed")
    result = preview if dry_run else provisioner.destroy(caseload_id)
    if as_json:
        echo_json({"id": result.id, "db": result.db, "doc_count": result.doc_count,
                   "changed": result.changed, "dry_run": dry_run})
    elif not result.changed:
        click.echo(f"caseload {result.id} was already destroyed")
    elif dry_run:
        click.echo(f"would destroy caseload {result.id} ({result.db}, "
                   f"{plural(result.doc_count or 0, 'document')})")
    else:
        click.echo(f"destroyed caseload {result.id}: {result.db} deleted, "
                   "registry status destroyed")
