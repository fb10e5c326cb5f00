"""Reading the fleet's aggregates from CouchDB's views: a few grouped reads per day database,
one of the audit trail, one reduce of each caseload's conflicts view.

Every number here comes out of a view's reduce, so reading two weeks of a 2,000-tablet fleet
does not read its 280,000 reports (benchmarks/fleet_reports.py measures it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from . import ddocs
from .clock import format_utc
from .couch import CouchClient, Database, Doc
from .errors import CarecouchError, CouchNotFound
from .fleet import DAY_PREFIX, FleetStore, audit_design, install_design
from .fleet_rollup import activity_rows, report_rows
from .ids import caseload_db
from .parallel import map_parallel
from .registry import CaseloadRegistry
from .security import ensure_admin_only_db
from .sync_states import SyncResult

AUDIT_DB = "carecouch_audit"
ALL = ""  # the key of the whole fleet in per-caseload maps


@dataclass
class Syncs:
    """Syncs of one caseload (or the fleet) in one span: counts by result and a histogram
    of the durations of those that completed (ok or with refused writes: how long a stopped
    sync took to give up says nothing of syncing), each bucket with the count, sum, min and
    max of the durations in it."""

    results: dict[str, int] = field(default_factory=dict)
    buckets: dict[int, list[float]] = field(default_factory=dict)  # [count, sum, min, max]

    def add(self, result: str, bucket: int, stats: Doc) -> None:
        count = int(stats["count"])
        self.results[result] = self.results.get(result, 0) + count
        if result == SyncResult.STOPPED:
            return
        kept = self.buckets.get(bucket)
        if kept is None:
            self.buckets[bucket] = [count, float(stats["sum"]), float(stats["min"]),
                                    float(stats["max"])]
        else:
            kept[0] += count
            kept[1] += float(stats["sum"])
            kept[2] = min(kept[2], float(stats["min"]))
            kept[3] = max(kept[3], float(stats["max"]))

    @property
    def total(self) -> int:
        return sum(self.results.values())

    def count(self, result: str) -> int:
        return self.results.get(result, 0)

    @property
    def success_rate(self) -> float | None:
        return self.count("ok") / self.total if self.total else None

    def percentile(self, q: float) -> float | None:
        """The q-quantile of the durations (ms): the bucket holding it found from the
        counts, the value placed by rank between that bucket's min and max (buckets are
        19% wide, so it is within that of the exact figure, and exact in a bucket of one)."""
        total = sum(int(b[0]) for b in self.buckets.values())
        if not total:
            return None
        rank = max(1.0, math.ceil(q * total))
        seen = 0
        for bucket in sorted(self.buckets):
            count, _, low, high = self.buckets[bucket]
            if seen + count >= rank:
                if count <= 1:
                    return low
                return low + (high - low) * (rank - seen - 1) / (count - 1)
            seen += int(count)
        return None  # pragma: no cover

    def as_json(self) -> dict[str, Any]:
        return {"syncs": self.total, **{str(r): self.count(r) for r in SyncResult},
                "success_rate": _round(self.success_rate),
                "p50_ms": _round(self.percentile(0.5), 0),
                "p95_ms": _round(self.percentile(0.95), 0)}


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class FleetReads:
    """What the views say for one window: per caseload (``ALL`` for the fleet) and per day."""

    syncs: dict[str, Syncs] = field(default_factory=dict)
    daily: dict[str, dict[str, Syncs]] = field(default_factory=dict)   # day -> caseload ->
    refusals: dict[str, dict[str, int]] = field(default_factory=dict)  # caseload -> code ->
    samples: dict[str, dict[str, int]] = field(default_factory=dict)   # caseload -> day -> max
    activity: dict[str, dict[str, int]] = field(default_factory=dict)  # caseload -> action ->
    daily_activity: dict[str, dict[str, int]] = field(default_factory=dict)  # day -> action ->


def read_window(store: FleetStore, since: datetime, now: datetime,
                caseloads: Sequence[str] = ()) -> FleetReads:
    """Every aggregate of reports started in ``[since, now]`` (to the hour)."""
    reads = FleetReads()
    wanted = set(caseloads)
    first_hour = format_utc(since)[:13]

    def one(db: Database) -> list[Doc]:
        name = db.name[len(DAY_PREFIX):]
        return report_rows(db, f"{name[:4]}-{name[4:6]}-{name[6:]}", first_hour, now)

    for result in map_parallel(one, store.days_since(since, now)):
        if isinstance(result, CarecouchError):
            if isinstance(result, CouchNotFound):
                continue  # dropped by retention while we read
            raise result
        for row in result:
            kind, caseload, hour = row["key"][:3]
            if hour < first_hour or (wanted and caseload not in wanted):
                continue
            _add(reads, kind, caseload, hour, row["key"][3:], row["value"])
    _read_activity(store.client, reads, since, now, wanted)
    return reads


def _add(reads: FleetReads, kind: str, caseload: str | None, hour: str, rest: list[Any],
         stats: Doc) -> None:
    if kind == "sample":
        assert caseload is not None
        days = reads.samples.setdefault(caseload, {})
        days[hour[:10]] = max(days.get(hour[:10], 0), int(stats["max"]))
        return
    for key in (caseload or "?", ALL):
        if kind == "sync":
            outcome, bucket = rest
            reads.syncs.setdefault(key, Syncs()).add(outcome, bucket, stats)
            reads.daily.setdefault(hour[:10], {}).setdefault(key, Syncs()).add(
                outcome, bucket, stats)
        elif kind == "refused":
            codes = reads.refusals.setdefault(key, {})
            codes[rest[0]] = codes.get(rest[0], 0) + int(stats["sum"])


def ensure_audit_views(client: CouchClient) -> None:
    """The fleet view of the audit trail (an admin-only database the bridge creates)."""
    ensure_admin_only_db(client, AUDIT_DB)
    install_design(client.db(AUDIT_DB), audit_design())


def _read_activity(client: CouchClient, reads: FleetReads, since: datetime, now: datetime,
                   wanted: set[str]) -> None:
    db = client.db(AUDIT_DB)
    first_hour = format_utc(since)[:13]
    first, last = since.astimezone(UTC).date(), now.astimezone(UTC).date()
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]

    def read() -> list[Doc]:
        found: list[Doc] = []
        for result in map_parallel(lambda d: activity_rows(db, d, first_hour, now), days):
            if isinstance(result, CarecouchError):
                raise result
            found += result
        return found

    try:
        rows = read()
    except CouchNotFound:
        if not db.exists():
            return  # no audit trail yet: nothing has happened
        ensure_audit_views(client)
        rows = read()
    for row in rows:
        hour, action, caseload = row["key"]
        if wanted and caseload != ALL and caseload not in wanted:
            continue
        counts = reads.activity.setdefault(caseload, {})
        counts[action] = counts.get(action, 0) + int(row["value"])
        if caseload == ALL:
            day = reads.daily_activity.setdefault(hour[:10], {})
            day[action] = day.get(action, 0) + int(row["value"])


def live_conflicts(client: CouchClient, caseloads: Sequence[str]) -> dict[str, int | None]:
    """Conflicted records in each caseload now, from its conflicts view (None: unreadable,
    e.g. a caseload without the view)."""
    def one(caseload: str) -> int:
        rows = client.db(caseload_db(caseload)).view(ddocs.MAIN_DDOC, "conflicts",
                                                     reduce=True)["rows"]
        return int(rows[0]["value"]) if rows else 0

    results = map_parallel(one, list(caseloads))
    return {c: (r if isinstance(r, int) else None)
            for c, r in zip(caseloads, results, strict=True)}


def take_samples(client: CouchClient, store: FleetStore, now: datetime | None = None
                 ) -> dict[str, int]:
    """Record what CouchDB says of every active caseload now (its conflicted records), as
    this hour's sample; the bridge does it hourly, ``carecouch fleet sample`` on demand."""
    active = CaseloadRegistry(client).active_ids()
    counts = {c: n for c, n in live_conflicts(client, active).items() if n is not None}
    store.record_samples(counts, now)
    return counts
