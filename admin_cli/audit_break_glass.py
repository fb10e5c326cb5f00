"""``carecouch audit break-glass`` and ``carecouch audit review``: emergency access, for
review (added to ``carecouch audit``)."""

from __future__ import annotations

import click

from carecouch import break_glass as glass
from carecouch.audit import AuditLog

from .context import AppContext, pass_app
from .output import echo_json, echo_table, json_option, note


@click.command(name="break-glass")
@click.option("--since", metavar="TIME", help="Only entries at or after this ISO 8601 time.")
@click.option("--user", help="Only this user's break-glass access.")
@click.option("--pending", is_flag=True, help="Only grants not reviewed yet.")
@json_option
@pass_app
def break_glass(app: AppContext, since: str | None, user: str | None, pending: bool,
                as_json: bool) -> None:
    """Break-glass credentials issued by the bridge: who, which caseload, when, why, and the
    review (`carecouch audit review ID`). Every one is flagged for review; this is the list."""
    found = [g for g in glass.grants(AuditLog(app.client, "carecouch"), since=since, user=user)
             if not pending or g.review is glass.Outcome.PENDING]
    if as_json:
        echo_json([g.to_json() for g in found])
        return
    if found:
        echo_table(["ID", "AT", "USER", "DEVICE", "CASELOAD", "EXPIRES", "REVIEW",
                    "JUSTIFICATION"],
                   [[g.id, g.at, g.user, g.device, g.caseload, g.expires_at, str(g.review),
                     g.justification] for g in found])
    click.echo(f"{len(found)} break-glass grant{'' if len(found) == 1 else 's'}")


@click.command()
@click.argument("grant_id", metavar="ID")
@click.option("--outcome", required=True,
              type=click.Choice([str(glass.Outcome.JUSTIFIED), str(glass.Outcome.NOT_JUSTIFIED)]),
              help="Was the emergency access justified?")
@click.option("--note", "text", required=True, help="What the review found (kept in the trail).")
@json_option
@pass_app
def review(app: AppContext, grant_id: str, outcome: str, text: str, as_json: bool) -> None:
    """Record the review of break-glass grant ID (from `carecouch audit break-glass`); the
    device that used it stops flagging it."""
    actor = app.client.user or "carecouch"
    reviewed = glass.review(AuditLog(app.client, actor), grant_id, glass.Outcome(outcome), text)
    if as_json:
        echo_json(reviewed.to_json())
        return
    note(f"reviewed {reviewed.id}: {reviewed.review}")
