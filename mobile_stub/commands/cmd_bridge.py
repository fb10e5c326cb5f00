"""The bridge: ``enrol`` the device once, ``login`` as the clinician using it."""

from __future__ import annotations

from typing import Any

import click

from carecouch import prompts

from .. import enrolment
from .context import TOKEN_VARIABLE, DeviceContext, checked_url, pass_device

_TOKEN_HELP = f"The clinician's identity-provider token (or ${TOKEN_VARIABLE})"


@click.command()
@click.option("--bridge", "bridge_url", envvar="CARECOUCH_DEVICE_BRIDGE", required=True,
              metavar="URL", help="The bridge's URL (or $CARECOUCH_DEVICE_BRIDGE).")
@click.option("--token", envvar=TOKEN_VARIABLE, required=True, metavar="JWT",
              help=_TOKEN_HELP + ".")
@click.option("--label", metavar="TEXT", help="A name IT will recognise, e.g. 'Ward 3 tablet'.")
@pass_device
def enrol(ctx: DeviceContext, bridge_url: str, token: str, label: str | None) -> None:
    """Register this device's new signing key with the bridge, and pin the bridge's key."""
    url = checked_url(bridge_url, "--bridge", "--token")
    result = enrolment.enrol(ctx.store(), url, token, label)
    ctx.emit(result, lambda d: f"enrolled device {d['device_id']} with {d['bridge']} (bridge "
                               f"key {', '.join(d['bridge_keys'])}); next: carecouch-device "
                               "login")


@click.command()
@click.option("--token", envvar=TOKEN_VARIABLE, metavar="JWT",
              help=_TOKEN_HELP + "; default: the last one given.")
@pass_device
def login(ctx: DeviceContext, token: str | None) -> None:
    """Get CouchDB credentials and the signed policy snapshot from the bridge."""
    ctx.emit(ctx.session(token).login(), _login_text)


def _login_text(data: dict[str, Any]) -> str:
    snapshot = data["snapshot"]
    return "\n".join([
        f"logged in as {snapshot['user']} ({data['username']}) through {data['bridge']}",
        f"credentials expire {data['credential_expires_at']}; offline work allowed until "
        f"{data['offline_until']}",
        f"databases: {', '.join(snapshot['databases']) or 'none'}",
        f"may write: {', '.join(snapshot['record_types']) or 'nothing'}"])


@click.command(name="break-glass")
@click.argument("caseload")
@click.option("--justification", metavar="TEXT",
              help="Why this emergency access is needed (at least 20 characters; asked for "
                   "when not given). It is kept in the audit trail for review.")
@click.option("--token", envvar=TOKEN_VARIABLE, metavar="JWT",
              help=_TOKEN_HELP + "; default: the last one given.")
@pass_device
def break_glass(ctx: DeviceContext, caseload: str, justification: str | None,
                token: str | None) -> None:
    """Emergency access to a caseload outside your policy (online, through the bridge). It
    is short-lived, audited, and flagged in `status` until a reviewer has looked at it."""
    if not ctx.enrolled():
        raise click.UsageError("break-glass needs an enrolled device (run `enrol` first)")
    text = justification or prompts.typed("Why do you need this access now?")
    if not text.strip():
        raise click.UsageError("a justification is required (--justification TEXT)")
    grant = ctx.session(token).break_glass(caseload, text.strip())
    ctx.emit(grant, lambda g: f"break-glass access to {g['caseload']} until {g['expires_at']};"
                              f" flagged for review ({g['id']})")
