"""Replication: ``sync`` (once or continuously) and the recoveries of refused writes."""

from __future__ import annotations

import time
from collections.abc import Callable

import click

from ..replication import CheckpointTrust, SyncReport
from .context import DeviceContext, db_option, pass_device


def _line(report: SyncReport) -> str:
    line = (f"{report.database}: {report.state.value} — pulled {report.pull.docs_written}, "
            f"pushed {report.push.docs_written}, refused {report.rejected}")
    restarted = [direction for direction, trust in report.checkpoints.items()
                 if CheckpointTrust(trust).restarted]
    if restarted:
        line += (f"; the server's {' and '.join(restarted)} checkpoint was missing or not this "
                 "device's: started from the beginning (see status)")
    return line + (f" ({report.message})" if report.message else "")


def _lines(reports: list[SyncReport]) -> Callable[[object], str]:
    return lambda _: "\n".join(_line(report) for report in reports)


@click.command()
@click.option("--db", "database", metavar="NAME", help="Sync only this database.")
@click.option("--continuous", is_flag=True, help="Keep syncing every --interval seconds "
              "until interrupted.")
@click.option("--interval", default=30.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds between syncs with --continuous.")
@click.option("--json", "as_json", is_flag=True, help="Print the sync reports as JSON.")
@pass_device
def sync(ctx: DeviceContext, database: str | None, continuous: bool, interval: float,
         as_json: bool) -> None:
    """Pull then push each database once (or continuously); exit 1 if any stopped."""
    ctx.as_json = ctx.as_json or as_json
    device = ctx.device()
    names = [ctx.database(database)] if database else device.store.database_names()
    while True:
        reports = [device.sync(name) for name in names]
        ctx.emit([r.to_json() for r in reports], _lines(reports))
        refused = sum(r.rejected for r in reports)
        if refused:
            click.echo(f"{refused} write(s) refused by the server: see `carecouch-device "
                       "status`", err=True)
        if not continuous:
            if not all(r.ok for r in reports):
                raise click.exceptions.Exit(1)
            return
        try:
            time.sleep(interval)
        except KeyboardInterrupt:
            return


@click.command()
@click.argument("doc_id")
@db_option
@click.option("--rev", metavar="REV", help="Which refused revision (default: the latest).")
@pass_device
def retry(ctx: DeviceContext, doc_id: str, database: str | None, rev: str | None) -> None:
    """Recover a refused write as its reason says (*.reread: re-read, re-apply, sync)."""
    device = ctx.device()
    name = ctx.database(database)
    new_rev = device.retry_rejected(name, doc_id, rev)
    report = device.sync(name)
    ctx.emit({"id": doc_id, "rev": new_rev, "sync": report.to_json()},
             lambda _: f"{doc_id}: re-applied as {new_rev}; {_line(report)}")
    if not report.ok:
        raise click.exceptions.Exit(1)


@click.command()
@click.argument("doc_id")
@db_option
@click.option("--rev", metavar="REV", help="Which refused revision (default: the latest).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_device
def discard(ctx: DeviceContext, doc_id: str, database: str | None, rev: str | None,
            yes: bool) -> None:
    """Take a refused revision out of the record (its content stays in the rejection log)."""
    name = ctx.database(database)
    if not yes:
        click.confirm(f"Discard the refused edit of {doc_id}?", abort=True, err=True)
    ctx.device().discard_rejected(name, doc_id, rev)
    ctx.emit({"id": doc_id, "discarded": True}, lambda _: f"{doc_id}: refused edit discarded")
