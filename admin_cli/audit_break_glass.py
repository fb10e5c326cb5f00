"""``carecouch audit break-glass``: emergency access for review (added to ``carecouch audit``)."""

from __future__ import annotations

import click

from carecouch.audit import AuditLog

from .context import AppContext, pass_app
from .output import echo_json, echo_table, json_option

ACTION = "break_glass.issue"


@click.command(name="break-glass")
@click.option("--since", metavar="TIME", help="Only entries at or after this ISO 8601 time.")
@click.option("--user", help="Only this user's break-glass access.")
@json_option
@pass_app
def break_glass(app: AppContext, since: str | None, user: str | None, as_json: bool) -> None:
    """Break-glass credentials issued by the bridge: who, which caseload, when, and why.

    Every one is flagged for review; this is the list to review.
    """
    entries = [e for e in AuditLog(app.client, "carecouch").entries(action=ACTION, since=since)
               if user is None or e["details"].get("user") == user]
    if as_json:
        echo_json([{"at": e["at"], "caseload": e["subject"], **e["details"]} for e in entries])
        return
    if entries:
        echo_table(["AT", "USER", "DEVICE", "CASELOAD", "EXPIRES", "REVIEW", "JUSTIFICATION"],
                   [[e["at"], e["details"].get("user"), e["details"].get("device"),
                     e["subject"], e["details"].get("expires_at"), e["details"].get("review"),
                     e["details"].get("justification")] for e in entries])
    click.echo(f"{len(entries)} break-glass grants")
