"""``lease claim|renew|release``: leases on exclusive records, through the bridge (online)."""

from __future__ import annotations

import click

from .. import leases
from .context import DeviceContext, db_option, pass_device


@click.group()
def lease() -> None:
    """Leases on exclusive records: claim one online before completing the record offline."""


def _command(action: str, help_text: str) -> None:
    @lease.command(action, help=help_text)
    @click.argument("record")
    @db_option
    @pass_device
    def command(ctx: DeviceContext, record: str, database: str | None) -> None:
        session = ctx.session()  # not enrolled: say so before anything else
        result = leases.change(session, ctx.device(), action, ctx.database(database), record)
        held = result["lease"]
        ctx.emit(result, lambda r: f"{record}: lease released" if not held else
                 f"{record}: leased to {held['holder']} on this device until "
                 f"{held['expires_at']}")


_command("claim", "Claim the lease on an exclusive record (needed to complete it).")
_command("renew", "Extend a lease you hold (same grant: work done under it stays valid).")
_command("release", "Give a lease back before it expires, so a colleague can take it.")
