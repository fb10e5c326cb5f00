"""Fleet health: the sync reports devices send, kept in CouchDB (docs/fleet.md).

Where everything lives, all admin only:

- ``carecouch_fleet_<YYYYMMDD>``: one database per UTC day of a report's ``started_at``,
  holding the reports (``report:<device>:<report id>``) and the hourly caseload samples
  (``sample:<caseload>:<hour>``, what CouchDB says of a caseload: its conflicted records),
  with the ``_design/fleet`` views the aggregates read (``couch/fleet/reports/``). A report
  sent twice lands in the same database under the same id: CouchDB's 409 makes it stored
  once, whichever bridge instance it reaches. Retention drops whole databases, as the nonce
  databases are dropped: no tombstones pile up, and no purge is needed.
- ``carecouch_fleet``: one ``device:<id>`` status document per device, its latest report
  per database, so that listing the fleet is one read.

Nothing here trusts a device for more than its own sync: the counts it reports about itself.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .clock import format_utc, parse_utc
from .config import default_couch_dir
from .couch import CouchClient, Database, Doc
from .ddocs import assemble
from .errors import CarecouchError, ConfigError, CouchConflict, CouchNotFound
from .security import ensure_admin_only_db
from .sync_states import COMPLETED_STATES, REPORTED_STATES, SyncResult

FLEET_DB = "carecouch_fleet"
DAY_PREFIX = "carecouch_fleet_"
DDOC = "fleet"
DDOC_ID = f"_design/{DDOC}"
STATUS_PREFIX = "device:"
REPORT_TYPE = "sync_report"
SAMPLE_TYPE = "caseload_sample"
DEFAULT_RETENTION_DAYS = 30
MAX_RETENTION_DAYS = 400
# A report dated further ahead of the bridge's clock than this cannot be right: refused (the
# device files by its estimate of the server clock, which it corrects at every contact).
FUTURE_TOLERANCE = timedelta(days=1)
MAX_REPORTS_PER_REQUEST = 100
CASELOAD_DB_PREFIX = "caseload_"

STATES = REPORTED_STATES
RESULTS = tuple(SyncResult)
REPORT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
REFUSAL_CODE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
DATABASE_NAME = re.compile(r"^[a-z][a-z0-9_$()+/-]{0,99}$")
MAX_COUNT = 2**31
MAX_CODES = 50
# removed / held_back: what the working-set pass after the sync removed from the device, and
# what it had to keep because the server has not confirmed it (mobile_stub/working_set.py).
COUNTS = ("pulled", "pushed", "retries", "conflicts", "pending", "refused_open",
          "store_bytes", "removed", "held_back")
EXPIRIES = ("credential_expires_at", "offline_until")
FIELDS = ("id", "database", "started_at", "ended_at", "state", "refused", "clock_offset_ms",
          "app_version", *COUNTS, *EXPIRIES)
REQUIRED = ("id", "database", "started_at", "ended_at", "state", "pulled", "pushed")


class BadReport(CarecouchError, ValueError):
    """A sync report that does not have the documented shape; ``field`` names the culprit."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def day_db(moment: datetime) -> str:
    return DAY_PREFIX + moment.astimezone(UTC).strftime("%Y%m%d")


def caseload_of(database: str) -> str | None:
    return database[len(CASELOAD_DB_PREFIX):] if database.startswith(CASELOAD_DB_PREFIX) \
        else None


def _count(data: Mapping[str, Any], name: str, *, required: bool = False) -> int:
    value = data.get(name)
    if value is None and not required:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < MAX_COUNT:
        raise BadReport(f"{name} must be a whole number from 0 to 2^31", name)
    return value


def _time(data: Mapping[str, Any], name: str, *, required: bool = False) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    try:
        if not isinstance(value, str) or len(value) > 40:
            raise ValueError
        moment = parse_utc(value)
        if not 2000 <= moment.year <= 9000:  # a clock that far off is no clock
            raise ValueError
        return format_utc(moment)
    except ValueError:
        raise BadReport(f"{name} must be an ISO 8601 UTC time", name) from None


def check_report(data: Any) -> Doc:
    """The report as the bridge keeps it (normalised, with ``caseload``, ``result`` and
    ``duration_ms`` derived), or :class:`BadReport` naming the first thing wrong."""
    if not isinstance(data, dict):
        raise BadReport("each report must be a JSON object")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise BadReport(f"unknown report field {unknown[0]!r}", unknown[0])
    for name in REQUIRED:
        if data.get(name) is None:
            raise BadReport(f"{name} is required in a report", name)
    report_id, database = data["id"], data["database"]
    if not isinstance(report_id, str) or not REPORT_ID.fullmatch(report_id):
        raise BadReport("id must be 8-64 of A-Z a-z 0-9 _ -", "id")
    if not isinstance(database, str) or not DATABASE_NAME.fullmatch(database):
        raise BadReport("database must be a CouchDB database name", "database")
    if data["state"] not in STATES:
        raise BadReport(f"state must be one of {', '.join(STATES)}", "state")
    started = _time(data, "started_at", required=True)
    ended = _time(data, "ended_at", required=True)
    assert started is not None and ended is not None
    refused = data.get("refused") or {}
    if not isinstance(refused, dict) or len(refused) > MAX_CODES:
        raise BadReport(f"refused must map at most {MAX_CODES} refusal codes to counts",
                        "refused")
    for code in refused:
        if not REFUSAL_CODE.fullmatch(code):
            raise BadReport("refused: a code is 1-64 of A-Z a-z 0-9 _ . : -", "refused")
        _count(refused, code, required=True)
    offset = data.get("clock_offset_ms")
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, int)
                               or abs(offset) > 10 * 365 * 86_400_000):
        raise BadReport("clock_offset_ms must be a whole number of milliseconds or null",
                        "clock_offset_ms")
    version = data.get("app_version")
    if version is not None and (not isinstance(version, str) or not 0 < len(version) <= 40):
        raise BadReport("app_version must be 1-40 characters", "app_version")
    duration = (parse_utc(ended) - parse_utc(started)) / timedelta(milliseconds=1)
    doc: Doc = {"type": REPORT_TYPE, "id": report_id, "database": database,
                "caseload": caseload_of(database), "started_at": started, "ended_at": ended,
                "duration_ms": max(0, int(duration)), "state": data["state"],
                "refused": {str(k): int(v) for k, v in sorted(refused.items())},
                "clock_offset_ms": offset, "app_version": version}
    for name in COUNTS:
        doc[name] = _count(data, name)
    for name in EXPIRIES:
        doc[name] = _time(data, name)
    doc["result"] = (SyncResult.STOPPED if doc["state"] not in COMPLETED_STATES
                     else SyncResult.REFUSED if doc["refused"] else SyncResult.OK)
    return doc


@dataclass
class Ingested:
    """What became of each report of one request, by report id."""

    stored: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)   # older than the retention period
    refused: list[dict[str, str]] = field(default_factory=list)  # {"id", "error"}

    def as_json(self) -> dict[str, Any]:
        return {"stored": self.stored, "duplicates": self.duplicates,
                "expired": self.expired, "refused": self.refused}


class FleetStore:
    """The fleet databases, as the server admin (the bridge's admin client, or the CLI's)."""

    def __init__(self, admin: CouchClient, *, retention_days: int = DEFAULT_RETENTION_DAYS
                 ) -> None:
        self.client = admin
        self.retention_days = retention_days
        self.status_db = admin.db(FLEET_DB)
        self._ready: set[str] = set()
        self._lock = threading.Lock()

    # -- databases ----------------------------------------------------------------------

    def ensure(self) -> None:
        """The status database exists (admin only)."""
        self._ensure(FLEET_DB, design=False)

    def _ensure(self, name: str, *, design: bool = True, force: bool = False) -> Database:
        db = self.client.db(name)
        with self._lock:
            if name in self._ready and not force:
                return db
        ensure_admin_only_db(self.client, name)
        if design:
            install_design(db, reports_design())
        with self._lock:
            self._ready.add(name)
        return db

    def day_names(self) -> list[str]:
        """Every day database, oldest first."""
        return sorted(n for n in self.client.all_dbs()
                      if n.startswith(DAY_PREFIX) and n[len(DAY_PREFIX):].isdigit())

    def days_since(self, since: datetime, now: datetime | None = None) -> list[Database]:
        """The day databases that can hold reports started at or after ``since``."""
        first = day_db(since)
        last = day_db((now or datetime.now(UTC)) + FUTURE_TOLERANCE)
        return [self.client.db(n) for n in self.day_names() if first <= n <= last]

    def oldest_kept(self, now: datetime | None = None) -> datetime:
        """The start of the oldest day the retention period keeps."""
        now = now or datetime.now(UTC)
        start = (now - timedelta(days=self.retention_days - 1)).astimezone(UTC)
        return start.replace(hour=0, minute=0, second=0, microsecond=0)

    def expired_days(self, now: datetime | None = None) -> list[str]:
        oldest = day_db(self.oldest_kept(now))
        return [n for n in self.day_names() if n < oldest]

    def drop_expired(self, now: datetime | None = None) -> list[str]:
        """Drop the day databases past the retention period (the whole day at once)."""
        dropped = []
        for name in self.expired_days(now):
            if self.client.db(name).destroy(missing_ok=True):
                dropped.append(name)
            with self._lock:
                self._ready.discard(name)
        return dropped

    # -- ingestion ------------------------------------------------------------------------

    def ingest(self, device: str, user: str | None, reports: Iterable[Doc], *,
               now: datetime | None = None) -> Ingested:
        """Store checked reports (:func:`check_report`) of ``device``; idempotent by id."""
        now = now or datetime.now(UTC)
        received = format_utc(now)
        oldest = self.oldest_kept(now)
        outcome = Ingested()
        by_day: dict[str, list[Doc]] = {}
        for report in reports:
            started = parse_utc(report["started_at"])
            if started < oldest:
                outcome.expired.append(report["id"])
            elif started > now + FUTURE_TOLERANCE:
                outcome.refused.append({"id": report["id"], "error": "report.future"})
            else:
                doc = {**report, "_id": f"report:{device}:{report['id']}", "device": device,
                       "user": user, "received_at": received}
                by_day.setdefault(day_db(started), []).append(doc)
        stored: list[Doc] = []
        for name, docs in sorted(by_day.items()):
            for doc, result in zip(docs, self._bulk(name, docs), strict=True):
                if "error" not in result:
                    outcome.stored.append(doc["id"])
                    stored.append(doc)
                elif result.get("error") == "conflict":
                    outcome.duplicates.append(doc["id"])
                else:
                    raise CarecouchError(f"CouchDB refused report {doc['id']}: "
                                         f"{result.get('error')}: {result.get('reason')}")
        if stored:
            self.update_status(device, user, stored, received)
        return outcome

    def _bulk(self, name: str, docs: list[Doc]) -> list[Doc]:
        db = self._ensure(name)
        try:
            return db.bulk_docs(docs)
        except CouchNotFound:  # dropped by retention (or by hand) since we made it
            return self._ensure(name, force=True).bulk_docs(docs)

    def update_status(self, device: str, user: str | None, reports: list[Doc],
                      received: str) -> bool:
        """Keep each database's newest report in the device's status document; a report
        that arrives late never replaces a newer one. False when the document kept changing
        under us (requests of one device at once): the reports are stored all the same, and
        the device's next report brings its status up to date."""
        for _ in range(5):
            doc = self.status_db.get_or_none(STATUS_PREFIX + device) or {
                "_id": STATUS_PREFIX + device, "type": "device_status", "device": device,
                "databases": {}}
            databases: dict[str, Doc] = dict(doc.get("databases") or {})
            for report in reports:
                kept = databases.get(report["database"])
                if kept is None or kept.get("started_at", "") < report["started_at"]:
                    databases[report["database"]] = status_entry(report)
            doc.update(databases=databases, last_report_at=received,
                       user=user if user is not None else doc.get("user"))
            try:
                self.status_db.put(doc)
                return True
            except CouchNotFound:
                self.ensure()
            except CouchConflict:
                continue
        return False

    def statuses(self) -> dict[str, Doc]:
        """Every device's status document, by device id (one read)."""
        return {str(doc["device"]): doc for doc in self.status_db.docs_with_prefix(STATUS_PREFIX)
                if "device" in doc}

    # -- what CouchDB says of caseloads ---------------------------------------------------

    def record_samples(self, conflicts: Mapping[str, int], now: datetime | None = None
                       ) -> int:
        """One sample per caseload and hour (the first one of the hour stands: several
        bridge instances sampling the same hour write one document); how many were new."""
        now = now or datetime.now(UTC)
        at = format_utc(now)
        docs = [{"_id": f"sample:{caseload}:{at[:13]}", "type": SAMPLE_TYPE,
                 "caseload": caseload, "at": at, "conflicts": int(count)}
                for caseload, count in sorted(conflicts.items())]
        if not docs:
            return 0
        return sum(1 for r in self._bulk(day_db(now), docs) if "error" not in r)


def status_entry(report: Mapping[str, Any]) -> Doc:
    """What the status document keeps of a database's newest report."""
    keep = ("id", "caseload", "started_at", "ended_at", "duration_ms", "state", "result",
            "pending", "conflicts", "refused_open", "removed", "held_back", "store_bytes",
            "clock_offset_ms",
            "credential_expires_at", "offline_until", "app_version", "received_at")
    return {k: report.get(k) for k in keep}


def reports_design() -> Doc:
    return assemble(default_couch_dir() / "fleet" / "reports")[DDOC_ID]


def audit_design() -> Doc:
    return assemble(default_couch_dir() / "fleet" / "audit")[DDOC_ID]


def install_design(db: Database, wanted: Doc) -> bool:
    """Put ``wanted`` unless the database holds it already; True if it wrote."""
    current = db.get_or_none(DDOC_ID)
    if current is not None and current.get("carecouch") == wanted.get("carecouch"):
        return False
    try:
        db.put({**wanted, **({"_rev": current["_rev"]} if current else {})})
    except CouchConflict:
        return False  # another instance installed it meanwhile
    return True


def retention_days(value: str | None) -> int:
    """``CARECOUCH_FLEET_RETENTION``: whole days, 1 to 400 (default 30)."""
    if value is None or not value.strip():
        return DEFAULT_RETENTION_DAYS
    text = value.strip().removesuffix("d")
    if not text.isdigit() or not 1 <= int(text) <= MAX_RETENTION_DAYS:
        raise ConfigError(f"CARECOUCH_FLEET_RETENTION must be a whole number of days from 1 "
                          f"to {MAX_RETENTION_DAYS} (e.g. 30 or 30d)")
    return int(text)

