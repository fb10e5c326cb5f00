"""``carecouch fleet``: how every device syncs — devices, a summary, alert checks, retention.

Thin: the work is in :mod:`carecouch.fleet_summary` (what the bridge's ``/v1/devices``,
``/metrics`` and dashboard print too), :mod:`carecouch.fleet_alerts` and
:mod:`carecouch.fleet`. docs/fleet.md says where each figure comes from.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from carecouch import prompts
from carecouch.cli_support import plural
from carecouch.clock import parse_utc
from carecouch.fleet import DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS, FleetStore
from carecouch.fleet_alerts import DEFAULT_RULES, check, load_rules
from carecouch.fleet_read import take_samples
from carecouch.fleet_summary import (
    DEFAULT_WINDOW,
    CaseloadSummary,
    DeviceRow,
    ago,
    fleet_devices,
    fleet_summary,
)
from carecouch.ids import check_caseload_id
from carecouch.policy_file import duration_seconds

from .context import AppContext, pass_app
from .errors import BadUsage, NotOk
from .output import caseloads_option, echo_json, echo_table, json_option, note, since_option


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    seconds = duration_seconds(value)
    if seconds is None or seconds < 1:
        raise BadUsage(f"--{param.name.replace('_', '-') if param.name else 'duration'} "
                       f"takes a duration such as 90s, 30m, 8h or 3d, not {value!r}")
    return timedelta(seconds=seconds)


silent_option = click.option(
    "--silent-after", default="1d", show_default=True, metavar="DURATION", callback=_duration,
    help="A device not heard from for this long counts as silent (90s, 30m, 8h, 3d).")
retention_option = click.option(
    "--retention", type=click.IntRange(1, MAX_RETENTION_DAYS), metavar="DAYS",
    default=DEFAULT_RETENTION_DAYS, show_default=True, envvar="CARECOUCH_FLEET_RETENTION",
    help="Days sync reports are kept (CARECOUCH_FLEET_RETENTION; the bridge's setting).")


def _store(app: AppContext, retention: int = DEFAULT_RETENTION_DAYS) -> FleetStore:
    return FleetStore(app.client, retention_days=retention)


@click.group()
def fleet() -> None:
    """How every device syncs: devices, a summary per caseload, alert checks, retention."""


def _when(text: str | None) -> str | None:
    return f"{text[:10]} {text[11:16]}" if text else None


def _device_rows(rows: list[DeviceRow]) -> list[list[object]]:
    return [[r.device, r.label, r.clinician, ",".join(r.caseloads) or None,
             _when(r.last_sync_at), r.last_result, r.pending, r.refused, r.conflicts,
             _when(r.credential_expires_at), _when(r.offline_until),
             ago(r.silent_seconds) if r.silent_seconds is not None else None,
             "; ".join(r.attention) or None] for r in rows]


@fleet.command()
@silent_option
@json_option
@pass_app
def devices(app: AppContext, silent_after: timedelta, as_json: bool) -> None:
    """Every device: clinician, caseloads, last sync and its result, pending changes, refused
    writes, conflicts, credential and offline-window expiry, and how long it has been silent.
    Those needing attention come first."""
    rows = fleet_devices(app.client, _store(app), silent_after=silent_after)
    if as_json:
        echo_json([r.as_json() for r in rows])
        return
    if rows:
        echo_table(["DEVICE", "LABEL", "CLINICIAN", "CASELOADS", "LAST SYNC", "RESULT",
                    "PENDING", "REFUSED", "CONFLICTS", "CREDENTIAL UNTIL", "OFFLINE UNTIL",
                    "SILENT", "ATTENTION"], _device_rows(rows),
                   right=("PENDING", "REFUSED", "CONFLICTS", "SILENT"))
    attention = sum(1 for r in rows if r.severity)
    click.echo(f"{plural(len(rows), 'device')}, {attention} needing attention")


def _percent(rate: float | None) -> str | None:
    return None if rate is None else f"{rate:.1%}"


def _seconds(ms: float | None) -> str | None:
    return None if ms is None else f"{ms / 1000:.1f}s"


def _summary_row(part: CaseloadSummary) -> list[object]:
    syncs = part.syncs
    known = [d["conflicts"] for d in part.conflicts_per_day if d["conflicts"] is not None]
    per_day = f"{sum(known) / len(known):.1f}" if known else None
    return [part.caseload or "(fleet)", syncs["syncs"], _percent(syncs["success_rate"]),
            _seconds(syncs["p50_ms"]), _seconds(syncs["p95_ms"]),
            sum(part.refusals.values()), part.conflicts_now, per_day, part.devices,
            part.devices_pending, part.devices_silent, part.break_glass]


@fleet.command()
@caseloads_option
@since_option("syncs and events")
@silent_option
@json_option
@pass_app
def summary(app: AppContext, caseloads: tuple[str, ...], since: str | None,
            silent_after: timedelta, as_json: bool) -> None:
    """Per caseload and for the fleet: success rate, p50/p95 sync duration, refused writes,
    conflicted records (now, and the daily peak), devices with pending changes, devices
    silent longer than --silent-after, break-glass grants. Default: the last 7 days."""
    now = datetime.now(UTC)
    start = parse_utc(since) if since else now - DEFAULT_WINDOW
    if start > now:
        raise BadUsage("--since is in the future")
    wanted = [check_caseload_id(c) for c in caseloads]
    result = fleet_summary(app.client, _store(app), caseloads=wanted, since=start, now=now,
                           silent_after=silent_after)
    if as_json:
        echo_json(result.as_json())
        return
    parts = [*result.caseloads, *([] if len(wanted) == 1 else [result.fleet])]
    echo_table(["CASELOAD", "SYNCS", "SUCCESS", "P50", "P95", "REFUSED", "CONFLICTS",
                "CONFL/DAY", "DEVICES", "PENDING", "SILENT", "BREAK-GLASS"],
               [_summary_row(p) for p in parts],
               right=("SYNCS", "SUCCESS", "P50", "P95", "REFUSED", "CONFLICTS", "CONFL/DAY",
                      "DEVICES", "PENDING", "SILENT", "BREAK-GLASS"))
    activity = result.fleet.activity if len(wanted) != 1 else result.caseloads[0].activity
    click.echo(f"since {result.since[:16]}Z: " + (", ".join(
        f"{action} {n}" for action, n in activity.items()) or "no bridge activity"))


@fleet.command(name="check")
@click.option("--rules", "rules_file", type=click.Path(dir_okay=False, path_type=Path),
              envvar="CARECOUCH_FLEET_ALERTS", metavar="FILE",
              help=f"The alert rules (YAML; docs/fleet.md). Default: the shipped rules "
                   f"({DEFAULT_RULES.name}), or CARECOUCH_FLEET_ALERTS.")
@json_option
@pass_app
def check_(app: AppContext, rules_file: Path | None, as_json: bool) -> None:
    """Check the alert rules: one line per breach on stdout, exit 1 when any rule is
    breached (0 when none): for cron and monitoring systems."""
    rules = load_rules(rules_file)
    breaches = check(app.client, _store(app), rules)
    if as_json:
        echo_json({"rules": len(rules), "breaches": [b.as_json() for b in breaches]})
    else:
        for breach in breaches:
            click.echo(breach.line)
        note(f"{plural(len(rules), 'rule')} checked, "
             f"{plural(len(breaches), 'breach', 'breaches')}")
    if breaches:
        raise NotOk()


@fleet.command()
@json_option
@pass_app
def sample(app: AppContext, as_json: bool) -> None:
    """Record what CouchDB says of every active caseload now (its conflicted records) as
    this hour's sample; each bridge does it hourly by itself."""
    counts = take_samples(app.client, _store(app))
    if as_json:
        echo_json({"conflicts": counts})
        return
    for caseload, count in counts.items():
        click.echo(f"{caseload}: {count} conflicted records")
    click.echo(f"{plural(len(counts), 'caseload')} sampled")


@fleet.command()
@retention_option
@click.option("--dry-run", is_flag=True, help="List what would be dropped; drop nothing.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_app
def purge(app: AppContext, retention: int, dry_run: bool, yes: bool, as_json: bool) -> None:
    """Drop the days of sync reports past the retention period (each day is one database,
    dropped whole; the bridge also does this in its reaper pass)."""
    store = _store(app, retention)
    expired = store.expired_days()
    if not dry_run and expired and not yes:
        prompts.confirm(f"Drop {len(expired)} day(s) of sync reports older than {retention} "
                        "days?", "not confirmed; nothing was dropped")
    dropped = expired if dry_run else store.drop_expired()
    if as_json:
        echo_json({"dry_run": dry_run, "retention_days": retention, "dropped": dropped})
        return
    for name in dropped:
        click.echo(f"{'would drop' if dry_run else 'dropped'} {name}")
    click.echo(f"{plural(len(dropped), 'day')} of reports {'to drop' if dry_run else 'dropped'} "
               f"(keeping {plural(retention, 'day')})")
