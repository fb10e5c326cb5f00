"""``carecouch credentials``: the device-session CouchDB users the bridge issued.

List them, reap the expired ones, revoke a lost device or a user. Thin: the work is in
:mod:`carecouch.credentials` and :mod:`carecouch.revocation`, which the bridge uses too.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from carecouch import prompts, revocation
from carecouch.cli_support import plural
from carecouch.credentials import CredentialStore, Session
from carecouch.ids import InvalidName, check_device_id, check_user_id

from .context import AppContext, pass_app
from .errors import BadUsage, CommandFailed
from .output import echo_json, echo_table, json_option, note


@click.group()
def credentials() -> None:
    """List, reap and revoke the bridge's short-lived device credentials."""


def _rows(sessions: list[Session]) -> list[list[object]]:
    return [[s.name, s.user, s.device, s.expires_at, "yes" if s.break_glass else None]
            for s in sessions]


@credentials.command(name="list")
@click.option("--user", help="Only this user's credentials.")
@click.option("--expired", is_flag=True, help="Only credentials past their expiry.")
@json_option
@pass_app
def list_(app: AppContext, user: str | None, expired: bool, as_json: bool) -> None:
    """List device-session credentials (CouchDB users the bridge created)."""
    now = datetime.now(UTC)
    found = [s for s in CredentialStore(app.client).sessions(user=user)
             if not expired or s.expired(now)]
    if as_json:
        echo_json([s.as_json() for s in found])
        return
    if found:
        echo_table(["NAME", "USER", "DEVICE", "EXPIRES", "BREAK-GLASS"], _rows(found))
    click.echo(plural(len(found), "credential"))


@credentials.command()
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@json_option
@pass_app
def reap(app: AppContext, dry_run: bool, as_json: bool) -> None:
    """Delete every expired credential now (the bridge also does this periodically)."""
    reaped = revocation.reap(app.client, app.client.user or "carecouch", dry_run=dry_run)
    if as_json:
        echo_json({"dry_run": dry_run, "reaped": [s.as_json() for s in reaped]})
        return
    for session in reaped:
        click.echo(f"{'would delete' if dry_run else 'deleted'} {session.name} "
                   f"(expired {session.expires_at})")
    click.echo(f"{len(reaped)} expired credentials {'found' if dry_run else 'deleted'}")


@credentials.command()
@click.option("--user", help="Revoke every credential of this user.")
@click.option("--device", help="Revoke this (lost) device and its credentials.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_app
def revoke(app: AppContext, user: str | None, device: str | None, yes: bool,
           as_json: bool) -> None:
    """Revoke a user (--user) or a lost device (--device): their CouchDB users are deleted,
    so their next request to CouchDB fails."""
    if (user is None) == (device is None):
        raise BadUsage("give exactly one of --user and --device")
    try:
        subject = check_user_id(user) if user is not None else check_device_id(device)
    except InvalidName as exc:
        raise BadUsage(str(exc)) from exc
    if not yes:
        what = f"user {subject}" if user else f"device {subject}"
        prompts.confirm(f"Revoke {what}? Their devices stop syncing at once.",
                        f"not confirmed; {what} was not revoked")
    actor = app.client.user or "carecouch"
    if user is not None:
        result = revocation.revoke_user(app.client, subject, actor)
    else:
        found = revocation.revoke_device(app.client, subject, actor)
        if found is None:
            raise CommandFailed(f"no device {subject} is enrolled")
        result = found
    if as_json:
        echo_json({"subject": subject, "deleted": result.deleted,
                   "revoked_at": result.revoked_at})
        return
    for name in result.deleted:
        note(f"deleted {name}")
    click.echo(f"revoked {'user' if user else 'device'} {subject}: "
               f"{plural(len(result.deleted), 'credential')} deleted")
