"""The fleet as IT and clinical leads read it: every device, and a summary per caseload.

Sources, each taken where it is true (docs/fleet.md):

- the registry (enrolled devices, their label and holder) and ``_users`` (the credential each
  holds, its expiry and caseloads): the server's own records;
- the devices' sync reports (their latest per database, and the views' aggregates): what
  each device says of its own syncs — pending changes, refusals, store size;
- the audit trail (issuance, renewal, revocation, break-glass, leases) and each caseload's
  conflicts view: what the bridge and CouchDB did and hold.

:func:`fleet_devices` and :func:`fleet_summary` are what ``carecouch fleet``, ``GET
/v1/devices``, ``GET /metrics`` and the dashboard all print.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .clock import format_utc, parse_utc
from .couch import CouchClient, Doc
from .credentials import CredentialStore
from .devices import DEVICE_PREFIX, DeviceStatus
from .fleet import FleetStore
from .fleet_read import ALL, FleetReads, Syncs, live_conflicts, read_window
from .ids import member_role
from .registry import REGISTRY_DB, CaseloadRegistry
from .sync_states import SyncResult

DEFAULT_SILENT_AFTER = timedelta(days=1)
DEFAULT_WINDOW = timedelta(days=7)
CASELOAD_ROLE = member_role("")


@dataclass
class DeviceRow:
    """One line of ``carecouch fleet devices``."""

    device: str
    label: str | None
    status: str                       # active | revoked | unenrolled
    clinician: str | None
    caseloads: list[str]
    last_sync_at: str | None          # the end of its newest sync (device clock estimate)
    last_result: str | None           # ok | refused | stopped
    last_state: str | None            # the device's sync state (ok, unreachable, ...)
    pending: int
    refused: int                      # refused writes waiting for the clinician
    conflicts: int                    # conflicted records on the device
    store_bytes: int | None
    app_version: str | None
    credential_expires_at: str | None
    offline_until: str | None
    last_contact_at: str | None       # when the bridge last received a report (its clock)
    silent_seconds: int | None
    attention: list[str] = field(default_factory=list)
    severity: int = 0

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _registry_devices(client: CouchClient) -> dict[str, Doc]:
    return {str(doc["id"]): doc for doc in client.db(REGISTRY_DB).docs_with_prefix(DEVICE_PREFIX)
            if doc.get("type") == "device"}


def fleet_devices(client: CouchClient, store: FleetStore, *, now: datetime | None = None,
                  silent_after: timedelta = DEFAULT_SILENT_AFTER) -> list[DeviceRow]:
    """Every device, those needing attention first (then the longest silent)."""
    now = now or datetime.now(UTC)
    registry = _registry_devices(client)
    statuses = store.statuses()
    credentials: dict[str, Doc] = {}
    for session in CredentialStore(client).sessions():
        # The device's current credential: the holder's (a shared tablet may list another).
        credentials.setdefault(session.device, {}).update(
            {session.user: {"expires_at": session.expires_at, "roles": session.roles}})
    rows = []
    for device_id in sorted(set(registry) | set(statuses)):
        reg = registry.get(device_id, {})
        status = statuses.get(device_id, {})
        holder = reg.get("holder") or status.get("user")
        creds = credentials.get(device_id, {})
        credential = creds.get(holder) if holder in creds else (
            next(iter(creds.values())) if creds else None)
        rows.append(_row(device_id, reg, status, holder, credential, now, silent_after))
    rows.sort(key=lambda r: (-r.severity, -(r.silent_seconds or 0), r.device))
    return rows


def _row(device_id: str, reg: Doc, status: Doc, holder: str | None, credential: Doc | None,
         now: datetime, silent_after: timedelta) -> DeviceRow:
    databases: dict[str, Doc] = status.get("databases") or {}
    latest = max(databases.values(), key=lambda d: str(d.get("ended_at")), default=None)
    caseloads = sorted({r[len(CASELOAD_ROLE):] for r in (credential or {}).get("roles", ())
                        if r.startswith(CASELOAD_ROLE)}
                       or {str(d["caseload"]) for d in databases.values() if d.get("caseload")})
    contact = status.get("last_report_at")
    since = contact or reg.get("enrolled_at")
    silent = int((now - parse_utc(since)).total_seconds()) if since else None
    row = DeviceRow(
        device=device_id, label=reg.get("label"),
        status=str(reg.get("status") or DeviceStatus.UNENROLLED), clinician=holder,
        caseloads=caseloads,
        last_sync_at=latest.get("ended_at") if latest else None,
        last_result=latest.get("result") if latest else None,
        last_state=latest.get("state") if latest else None,
        pending=sum(int(d.get("pending") or 0) for d in databases.values()),
        refused=sum(int(d.get("refused_open") or 0) for d in databases.values()),
        conflicts=sum(int(d.get("conflicts") or 0) for d in databases.values()),
        store_bytes=latest.get("store_bytes") if latest else None,
        app_version=latest.get("app_version") if latest else None,
        credential_expires_at=(credential or {}).get("expires_at") or (
            latest.get("credential_expires_at") if latest else None),
        offline_until=latest.get("offline_until") if latest else None,
        last_contact_at=contact, silent_seconds=silent)
    _judge(row, now, silent_after)
    return row


def _judge(row: DeviceRow, now: datetime, silent_after: timedelta) -> None:
    """Why a device needs attention, worst first; its severity is the worst reason's."""
    if row.status != DeviceStatus.ACTIVE:
        return
    reasons: list[tuple[int, str]] = []
    silent = row.silent_seconds is not None and row.silent_seconds >= silent_after.total_seconds()
    if silent and row.pending:
        reasons.append((3, f"silent {ago(row.silent_seconds)} with {row.pending} pending "
                           "changes"))
    elif silent:
        reasons.append((1, f"silent {ago(row.silent_seconds)}" if row.last_contact_at
                        else f"never reported (enrolled {ago(row.silent_seconds)} ago)"))
    if row.offline_until and row.offline_until <= format_utc(now):
        reasons.append((3, "offline window passed: it cannot record until it logs in"))
    if row.refused:
        reasons.append((2, f"{row.refused} refused write{'s' if row.refused != 1 else ''} "
                           "waiting"))
    if row.last_result == SyncResult.STOPPED:
        reasons.append((2, f"last sync stopped ({row.last_state})"))
    if row.conflicts:
        reasons.append((1, f"{row.conflicts} conflicted record"
                           f"{'s' if row.conflicts != 1 else ''}"))
    reasons.sort(key=lambda r: -r[0])
    row.attention = [text for _, text in reasons]
    row.severity = reasons[0][0] if reasons else 0


def ago(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass
class CaseloadSummary:
    caseload: str | None              # None: the whole fleet
    syncs: dict[str, Any]
    refusals: dict[str, int]
    conflicts_now: int | None
    conflicts_per_day: list[dict[str, Any]]
    devices: int
    devices_pending: int
    devices_silent: int
    break_glass: int
    activity: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Summary:
    since: str
    now: str
    silent_after_seconds: int
    fleet: CaseloadSummary
    caseloads: list[CaseloadSummary]
    daily: list[dict[str, Any]]       # per day, the fleet (or the one caseload asked for)

    def as_json(self) -> dict[str, Any]:
        return {"since": self.since, "now": self.now,
                "silent_after_seconds": self.silent_after_seconds,
                "fleet": self.fleet.as_json(),
                "caseloads": [c.as_json() for c in self.caseloads], "daily": self.daily}


def fleet_summary(client: CouchClient, store: FleetStore, *, caseloads: Sequence[str] = (),
                  since: datetime | None = None, now: datetime | None = None,
                  silent_after: timedelta = DEFAULT_SILENT_AFTER,
                  devices: list[DeviceRow] | None = None) -> Summary:
    """Success rate, p50/p95 duration, conflicts per day, devices with pending changes or
    silent longer than ``silent_after``, break-glass and other bridge activity, per caseload
    (every active caseload, or those asked for) and for the fleet, from ``since``."""
    now = now or datetime.now(UTC)
    since = since or now - DEFAULT_WINDOW
    active = CaseloadRegistry(client).active_ids()
    scope = sorted(set(caseloads)) if caseloads else active
    reads = read_window(store, since, now, scope if caseloads else ())
    live = live_conflicts(client, scope)
    rows = devices if devices is not None else fleet_devices(client, store, now=now,
                                                              silent_after=silent_after)
    days = _days(since, now)
    per = [_caseload(c, reads, live.get(c), rows, days, silent_after) for c in scope]
    total_live = sum(v for v in live.values() if v is not None)
    fleet = _caseload(None, reads, total_live, rows, days, silent_after, scope=scope)
    one = per[0] if len(caseloads) == 1 and per else None
    conflicts = {d["day"]: d["conflicts"] for d in (one or fleet).conflicts_per_day}
    daily = [{"day": d, **reads.daily.get(d, {}).get(one.caseload if one and one.caseload
                                                     else ALL, Syncs()).as_json(),
              "conflicts": conflicts.get(d),
              "break_glass": reads.daily_activity.get(d, {}).get("break_glass.issue", 0)}
             for d in days]
    return Summary(format_utc(since), format_utc(now), int(silent_after.total_seconds()),
                   fleet, per, daily)


def _days(since: datetime, now: datetime) -> list[str]:
    first = since.astimezone(UTC).date()
    last = now.astimezone(UTC).date()
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _caseload(caseload: str | None, reads: FleetReads, live: int | None,
              rows: list[DeviceRow], days: list[str], silent_after: timedelta, *,
              scope: Sequence[str] = ()) -> CaseloadSummary:
    key = ALL if caseload is None else caseload
    mine = [r for r in rows if r.status == DeviceStatus.ACTIVE and (
        caseload in r.caseloads if caseload is not None
        else not scope or set(r.caseloads) & set(scope) or not r.caseloads)]
    samples: dict[str, int] = {}
    for c, by_day in reads.samples.items():
        if caseload is None or c == caseload:
            for day, value in by_day.items():
                samples[day] = samples.get(day, 0) + value
    if live is not None:  # today's figure is the live one: CouchDB now
        samples[days[-1]] = live
    per_day = [{"day": d, "conflicts": samples.get(d)} for d in days]
    activity = reads.activity.get(key, {})
    silent = silent_after.total_seconds()
    return CaseloadSummary(
        caseload=caseload, syncs=reads.syncs.get(key, Syncs()).as_json(),
        refusals=dict(sorted(reads.refusals.get(key, {}).items())), conflicts_now=live,
        conflicts_per_day=per_day, devices=len(mine),
        devices_pending=sum(1 for r in mine if r.pending),
        devices_silent=sum(1 for r in mine if (r.silent_seconds or 0) >= silent),
        break_glass=activity.get("break_glass.issue", 0), activity=dict(sorted(
            activity.items())))

