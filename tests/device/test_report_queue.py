"""The device's queue of fleet reports (mobile_stub/reports.py), on a real encrypted store."""

from __future__ import annotations

from collections.abc import Callable

from carecouch.clock import parse_utc
from mobile_stub import reports
from mobile_stub.replication import SyncState
from mobile_stub.replication.status import SyncReport
from mobile_stub.store import DeviceStore


def test_reports_never_go_back_in_time_when_the_clock_estimate_moves(
        new_store: Callable[[], DeviceStore]) -> None:
    """Report times are on the device's estimate of the server clock; when the estimate
    falls by most of a second between two syncs (Date headers have one-second resolution),
    the later sync must still be the later report, or the fleet shows the older as newest."""
    store = new_store()
    store.save_clock_offset(900)
    first = reports.record(store, SyncReport("caseload_a", SyncState.UNREACHABLE,
                                             started_at="2026-12-02T09:00:00.000000Z",
                                             ended_at="2026-12-02T09:00:02.000000Z"), None)
    store.save_clock_offset(-100)
    second = reports.record(store, SyncReport("caseload_a", SyncState.OK,
                                              started_at="2026-12-02T09:00:00.500000Z",
                                              ended_at="2026-12-02T09:00:00.800000Z"), None)
    assert first is not None and second is not None
    assert first["started_at"] == "2026-12-02T09:00:00.900000Z"
    assert second["started_at"] > first["started_at"]
    duration = parse_utc(second["ended_at"]) - parse_utc(second["started_at"])
    assert duration.total_seconds() == 0.3  # moved, not stretched
    assert [r["state"] for r in reports.queued(store)] == ["unreachable", "ok"]
    # A sync after a released caseload still reports, with zero counts of what is gone.
    released = reports.record(store, SyncReport("caseload_gone", SyncState.RELEASED,
                                                started_at="2026-12-02T09:05:00.000000Z",
                                                ended_at="2026-12-02T09:05:01.000000Z"), None)
    assert released is not None and (released["pending"], released["conflicts"]) == (0, 0)
