"""Sync reports for fleet health: recorded after every sync the device attempts, queued in
the store, sent to the bridge when it can be reached (docs/device.md, "Sync reports").

A report is one database's sync: when it started and ended (on the device's estimate of the
server clock), its state, how much it pulled and pushed, the refused writes by the rule's
code, and how the device stands after it (conflicted records, pending local changes, refused
writes waiting, store size, clock offset, credential and offline-window expiry, app
version). It holds no clinical content — refusal *codes*, never the reasons, which can quote
a record — so the store keeps the queue in the clear, beside the other counts (``meta``
rows ``fleet_report:<started_at>:<id>``). A device in offline mode attempts nothing and
records nothing.

Sending: ``POST /v1/reports`` signed like every device request, in batches; each report has
an id made once, here, so a batch sent again after a lost answer is stored once. The bridge
names every report it received (stored, duplicate, expired, refused): those leave the queue.
The queue keeps at most :data:`MAX_QUEUED` reports (weeks of syncs); past that the oldest go.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

from carecouch import __version__
from carecouch.clock import format_utc, parse_utc
from carecouch.sync_states import SyncState

from .bridge_api import Answer
from .errors import BridgeError, UnknownDatabase
from .replication.status import SyncReport
from .store.device import DeviceStore
from .store.schema import sidecar_files

PREFIX = "fleet_report:"
LAST_STARTED = "fleet_last_started_at"  # not under PREFIX: not a queued report
MAX_QUEUED = 2000
BATCH = 50  # about 30 KiB a request: well inside the bridge's 64 KiB body limit
PATH = "/v1/reports"
BAD_REPORT = "report.bad"


@runtime_checkable
class Expiries(Protocol):
    """A credentials provider that knows its expiries (the bridge session does)."""

    def report_expiries(self) -> dict[str, str | None]: ...


class Poster(Protocol):
    def post(self, path: str, body: dict[str, Any]) -> Answer: ...


def _server_time(text: str, offset_ms: int | None) -> str:
    """A device-clock time moved onto the device's estimate of the server clock."""
    return format_utc(parse_utc(text) + timedelta(milliseconds=offset_ms or 0))


def store_bytes(store: DeviceStore) -> int:
    return sum(p.stat().st_size for p in [store.path, *sidecar_files(store.path)]
               if p.exists())


def build(store: DeviceStore, report: SyncReport, credentials: object) -> dict[str, Any] | None:
    """The fleet report of one sync (None for a sync offline mode never attempted)."""
    if report.state is SyncState.OFFLINE or not report.started_at:
        return None
    offset = store.clock_offset_ms
    try:
        counts = store.database(report.database).counts()
    except UnknownDatabase:
        counts = {"conflicted": 0, "pending": 0}  # released: it left the device in this sync
    expiries = credentials.report_expiries() if isinstance(credentials, Expiries) else {}
    refused = Counter(str(r.get("code") or r.get("error") or "unknown")
                      for r in report.refused)
    return {
        "id": uuid.uuid4().hex, "database": report.database,
        "started_at": _server_time(report.started_at, offset),
        "ended_at": _server_time(report.ended_at or report.started_at, offset),
        "state": report.state.value, "pulled": report.pull.docs_written,
        "pushed": report.push.docs_written, "refused": dict(sorted(refused.items())),
        "retries": report.retries, "conflicts": counts["conflicted"],
        "pending": counts["pending"], "refused_open": counts.get("refused", 0),
        "store_bytes": store_bytes(store), "clock_offset_ms": offset,
        "removed": report.removed.total if report.removed else 0,
        "held_back": report.removed.held_back if report.removed else 0,
        "credential_expires_at": expiries.get("credential_expires_at"),
        "offline_until": expiries.get("offline_until"), "app_version": __version__}


def record(store: DeviceStore, report: SyncReport, credentials: object) -> dict[str, Any] | None:
    """Queue the report of ``report``; returns it (None when there is nothing to report)."""
    built = build(store, report, credentials)
    if built is None:
        return None
    _keep_in_order(store, built)
    store.set_meta(f"{PREFIX}{built['started_at']}:{built['id']}", json.dumps(built))
    _trim(store)
    return built


def _keep_in_order(store: DeviceStore, built: dict[str, Any]) -> None:
    """Report times are the device's estimate of the server clock, and the estimate moves
    (server ``Date`` headers have one-second resolution): a later sync could be stamped
    before an earlier one, and the fleet would take the older report for the newest. So a
    device's reports never go back in time: a sync stamped at or before the previous one is
    moved just after it, its duration kept."""
    previous = store.get_meta(LAST_STARTED)
    started = parse_utc(built["started_at"])
    if previous is not None and started <= parse_utc(previous):
        shift = parse_utc(previous) - started + timedelta(microseconds=1)
        built["started_at"] = format_utc(started + shift)
        built["ended_at"] = format_utc(parse_utc(built["ended_at"]) + shift)
    store.set_meta(LAST_STARTED, built["started_at"])


def _rows(store: DeviceStore, limit: int | None = None) -> list[tuple[str, str]]:
    sql = "SELECT key, value FROM meta WHERE key >= ? AND key < ? ORDER BY key"
    params: tuple[Any, ...] = (PREFIX, PREFIX + "\uffff")
    if limit is not None:
        sql += " LIMIT ?"
        params += (limit,)
    return [(str(k), str(v)) for k, v in store.conn.execute(sql, params)]


def _trim(store: DeviceStore) -> None:
    excess = len(_rows(store)) - MAX_QUEUED
    if excess > 0:
        _delete(store, [key for key, _ in _rows(store, excess)])


def queued(store: DeviceStore) -> list[dict[str, Any]]:
    """The reports not yet heard by the bridge, oldest first."""
    return [json.loads(value) for _, value in _rows(store)]


def send(store: DeviceStore, bridge: Poster) -> int:
    """Send the queue in batches; returns how many reports the bridge heard. Stops at the
    first batch that fails (the rest waits for the next sync); :class:`DeviceRevoked`
    propagates (the device wipes itself)."""
    heard = 0
    while True:
        rows = _rows(store, BATCH)
        if not rows:
            return heard
        try:
            heard += _post(store, bridge, rows)
        except BridgeError as exc:
            if exc.code != BAD_REPORT or exc.status != 400:
                raise
            # One the bridge can never take (a bug, a store edited by hand): find it by
            # sending one at a time, and drop it, so the queue moves on.
            for row in rows:
                try:
                    heard += _post(store, bridge, [row])
                except BridgeError as single:
                    if single.code != BAD_REPORT or single.status != 400:
                        raise
                    _delete(store, [row[0]])


def _post(store: DeviceStore, bridge: Poster, rows: list[tuple[str, str]]) -> int:
    batch = [json.loads(value) for _, value in rows]
    names = _heard(bridge.post(PATH, {"reports": batch}).body)
    done = [key for (key, _), report in zip(rows, batch, strict=True)
            if report["id"] in names]
    if not done:
        raise BridgeError("the bridge's answer to the sync reports named none of them")
    _delete(store, done)
    return len(done)


def _delete(store: DeviceStore, keys: list[str]) -> None:
    store.conn.executemany("DELETE FROM meta WHERE key = ?", [(k,) for k in keys])


def _heard(body: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for part in ("stored", "duplicates", "expired"):
        names.update(str(i) for i in body.get(part) or [])
    names.update(str(r.get("id")) for r in body.get("refused") or [] if isinstance(r, dict))
    return names
