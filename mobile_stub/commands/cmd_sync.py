"""Replication: ``sync`` (once or continuously) and the recoveries of refused writes."""

from __future__ import annotations

import time
from collections.abc import Callable

import click

from carecouch import prompts
from carecouch.errors import CarecouchError
from carecouch.sync_states import SyncState

from .. import reports as fleet_reports
from ..errors import DeviceRevoked
from ..replication import CheckpointTrust, SyncReport
from ..working_set import REASON_TEXT
from .context import DeviceContext, db_option, field_values, pass_device


def _line(report: SyncReport) -> str:
    line = (f"{report.database}: {report.state.value} — pulled {report.pull.docs_written}, "
            f"pushed {report.push.docs_written}, refused {report.rejected}")
    restarted = [direction for direction, trust in report.checkpoints.items()
                 if CheckpointTrust(trust).restarted]
    if restarted:
        line += (f"; the server's {' and '.join(restarted)} checkpoint was missing or not this "
                 "device's: started from the beginning (see status)")
    removed = report.removed
    if removed is not None and removed.counts:
        line += "; removed from this device: " + ", ".join(
            f"{count} {REASON_TEXT[reason]}" for reason, count in sorted(removed.counts.items()))
    return line + (f" ({report.message})" if report.message else "")


def _lines(reports: list[SyncReport]) -> Callable[[object], str]:
    return lambda _: "\n".join(_line(report) for report in reports)


class _Progress:
    """Per database, documents pulled and pushed, on stderr, for syncs that take a while:
    at most one line every PROGRESS_EVERY seconds, the first after that long."""

    def __init__(self, quiet: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet = quiet
        self.clock = clock
        self.next_at = clock() + PROGRESS_EVERY

    def __call__(self, report: SyncReport) -> None:
        if self.quiet or self.clock() < self.next_at:
            return
        self.next_at = self.clock() + PROGRESS_EVERY
        click.echo(f"{report.database}: pulled {report.pull.docs_written}, pushed "
                   f"{report.push.docs_written} so far", err=True)


PROGRESS_EVERY = 2.0


@click.command()
@click.option("--db", "database", metavar="NAME", help="Sync only this database.")
@click.option("--continuous", is_flag=True, help="Keep syncing every --interval seconds "
              "until interrupted.")
@click.option("--interval", default=30.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds between syncs with --continuous.")
@click.option("--json", "as_json", is_flag=True, help="Print the sync reports as JSON.")
@click.option("-q", "--quiet", is_flag=True, help="No progress lines on stderr.")
@pass_device
def sync(ctx: DeviceContext, database: str | None, continuous: bool, interval: float,
         as_json: bool, quiet: bool) -> None:
    """Pull then push each database once (or continuously). Exit 1 when any sync stopped or
    the server refused any write (the reports name them; `status` says the way out)."""
    ctx.as_json = ctx.as_json or as_json
    device = ctx.device()
    device.replicator.on_progress = _Progress(quiet)
    names = [ctx.database(database)] if database else device.store.database_names()
    while True:
        reports = device.sync_all(names)
        # What the sync did is shown first: a bridge that answers "revoked" next wipes the
        # store and ends the command, and the clinician must still see what was synced.
        ctx.emit([r.to_json() for r in reports], _lines(reports))
        if ctx.enrolled() and any(r.reached for r in reports):
            _hear_reviews(ctx)
            _send_reports(ctx)
        failed = _summary(reports)
        if not continuous:
            if failed:
                raise click.exceptions.Exit(1)
            return
        try:
            time.sleep(interval)
        except KeyboardInterrupt:
            return


def _hear_reviews(ctx: DeviceContext) -> None:
    """While online, learn whether pending break-glass grants were reviewed (status flags
    them until then); a bridge that does not answer now is asked at the next sync."""
    try:
        ctx.session().refresh_reviews()
    except DeviceRevoked:
        raise
    except CarecouchError:
        pass


def _send_reports(ctx: DeviceContext) -> None:
    """While online, send the queued sync reports (the failed syncs' too: they arrive late,
    which is how IT hears of them); a bridge that does not answer now gets them next time."""
    try:
        fleet_reports.send(ctx.store(), ctx.session())
    except DeviceRevoked:
        raise
    except CarecouchError:
        pass


def _summary(reports: list[SyncReport]) -> bool:
    """One line on stderr for what needs attention; True when anything failed."""
    refused = sum(len(r.refused) for r in reports)
    if refused:
        click.echo(f"{refused} write{'s' if refused != 1 else ''} refused by the server: see "
                   "`carecouch-device status` for the way out", err=True)
    unreachable = [r for r in reports if r.state is SyncState.UNREACHABLE and not r.reached]
    if unreachable and len(unreachable) == len(reports):
        click.echo("the server cannot be reached: nothing was synced; everything is kept on "
                   "this device and syncs when the network is back", err=True)
    return bool(refused) or not all(r.ok for r in reports)


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
    """Take a refused revision out of the record (its content stays in the rejection log).
    Works offline."""
    name = ctx.database(database)
    if not yes:
        prompts.confirm(f"Discard the refused edit of {doc_id}?",
                        f"not confirmed; the refused edit of {doc_id} was kept")
    ctx.device().discard_rejected(name, doc_id, rev)
    ctx.emit({"id": doc_id, "discarded": True}, lambda _: f"{doc_id}: refused edit discarded")


@click.command()
@click.argument("doc_id")
@click.option("--set", "values", multiple=True, metavar="FIELD=VALUE",
              help="A field to change in the correction (repeatable; VALUE is read as JSON "
                   "when it is JSON).")
@click.option("--unset", "remove", multiple=True, metavar="FIELD",
              help="A field to leave out of the correction (repeatable).")
@db_option
@click.option("--rev", metavar="REV", help="Which refused revision (default: the latest).")
@pass_device
def correct(ctx: DeviceContext, doc_id: str, values: tuple[str, ...], remove: tuple[str, ...],
            database: str | None, rev: str | None) -> None:
    """Correct a refused append-only record (an observation, a note): a new record with its
    content and your changes, amending it if the server holds it; the refused revision is
    discarded (its content stays in the rejection log). Works offline."""
    name = ctx.database(database)
    corrected = ctx.device().correct_rejected(name, doc_id, field_values(values), remove, rev)
    ctx.emit({"id": corrected["_id"], "rev": corrected["_rev"], "corrects": doc_id},
             lambda d: f"{d['corrects']}: corrected by {d['id']} {d['rev']} (syncs next)")
