"""``carecouch audit``: read the audit trail."""

from __future__ import annotations

import click

from carecouch.cli_support import plural
from carecouch.conflicts.finder import caseload_scope
from carecouch.conflicts.trail import read_trail

from .audit_break_glass import break_glass, review
from .audit_verify import verify
from .context import AppContext, pass_app
from .errors import unread
from .output import (
    caseloads_option,
    echo_json,
    echo_table,
    json_option,
    note,
    progress,
    quiet_option,
    since_option,
)


@click.group()
def audit() -> None:
    """Read the audit trail: who did what, when and why."""


@audit.command()
@caseloads_option
@since_option("resolutions")
@json_option
@quiet_option
@pass_app
def resolutions(app: AppContext, caseloads: tuple[str, ...], since: str | None,
                as_json: bool, quiet: bool) -> None:
    """Conflict resolutions: who resolved which record, when, how and why.

    Read from the resolution records in each caseload and, for server admins, the
    carecouch_audit entries (which add each write's outcome).
    """
    scope = caseload_scope(app.client, caseloads)
    with progress(len(scope), "reading caseloads", quiet=quiet) as tick:
        trail = read_trail(app.client, scope, since=since, tick=tick)
    if as_json:
        echo_json({"resolutions": [e.as_json() for e in trail.entries],
                   "errors": trail.errors, "note": trail.audit_note})
    else:
        if trail.entries:
            echo_table(["AT", "CASELOAD", "DOCUMENT", "METHOD", "BY", "DISCARDED", "REASON",
                        "RESOLUTION", "UNDONE BY"],
                       [[e.at, e.caseload, e.doc, e.method, e.resolver, len(e.discarded_revs),
                         e.reason, e.resolution, ", ".join(e.undone_by) or None]
                        for e in trail.entries], right=("DISCARDED",))
        click.echo(plural(len(trail.entries), "resolution"))
    if trail.audit_note:
        note(trail.audit_note)
    for caseload, error in trail.errors.items():
        note(f"caseload {caseload} not read: {error}")
    if trail.errors:
        raise unread(trail.errors)


audit.add_command(break_glass)
audit.add_command(review)
audit.add_command(verify)
