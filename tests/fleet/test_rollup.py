"""A closed day's aggregates are kept beside its reports and used until a late report
changes the day; the audit trail's closed days are kept for good. Real server, real views."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from carecouch.clock import format_utc
from carecouch.couch import CouchClient
from carecouch.fleet import FleetStore, check_report, day_db
from carecouch.fleet_read import read_window


def reports(caseload: str, when: datetime, count: int, state: str = "ok") -> list[dict]:
    return [check_report({"id": uuid.uuid4().hex, "database": f"caseload_{caseload}",
                          "started_at": format_utc(when + timedelta(minutes=n)),
                          "ended_at": format_utc(when + timedelta(minutes=n, seconds=2)),
                          "state": state, "pulled": 1, "pushed": 1})
            for n in range(count)]


def test_a_closed_day_is_summed_once_until_a_late_report_changes_it(admin: CouchClient
                                                                    ) -> None:
    store = FleetStore(admin)
    caseload = f"r{uuid.uuid4().hex[:10]}"
    day = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    store.ingest(f"dev-{caseload}", None, reports(caseload, day, 3))
    later = day + timedelta(days=2)  # the day is over
    since = day.replace(hour=0)
    first = read_window(store, since, later, [caseload])
    assert first.syncs[caseload].count("ok") == 3
    db = admin.db(day_db(day))
    kept = db.get_local("fleet-days")
    assert kept is not None and kept["seq"] == db.info()["update_seq"]
    assert any(r["key"][:2] == ["sync", caseload] for r in kept["rows"])
    # Read again: the same figures from what was kept (no new rollup written).
    assert read_window(store, since, later, [caseload]).syncs[caseload].count("ok") == 3
    assert db.get_local("fleet-days")["_rev"] == kept["_rev"]
    # A device back from days offline reports that day late: the day is summed again.
    store.ingest(f"dev-{caseload}", None, reports(caseload, day + timedelta(hours=1), 2,
                                                  "unreachable"), now=later)
    again = read_window(store, since, later, [caseload]).syncs[caseload]
    assert (again.count("ok"), again.count("stopped")) == (3, 2)
    # A window that starts inside the day reads its hours (windows are to the hour).
    hours = read_window(store, day + timedelta(hours=1), later, [caseload])  # to the hour
    assert hours.syncs[caseload].count("stopped") == 2 and hours.syncs[caseload].count("ok") == 0
    assert db.get_local("fleet-hours") is not None
