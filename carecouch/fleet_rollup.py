"""Closed days' aggregates, kept beside the data they sum (``_local`` documents), so a summary
of two weeks reads two weeks of small documents, not two weeks of view rows.

CouchDB keeps a view's reductions in its b-tree, but a grouped read still returns every group
(a day of 2,000 devices is ~15,000 hour groups), and the embedded server reduces every row of
the range on each read (measured: 17 s for 280,000 reports). A day that is over changes only
when a late report arrives, so its grouped rows are stored once in the day database's
``_local/fleet-days`` (groups of the whole day) and ``_local/fleet-hours`` (by hour, for the
first, partly covered day of a window), stamped with the database's ``update_seq`` and the
view's version: any later write (a late report) changes the sequence, and the next read
sums the view again. ``_local`` documents change neither the sequence nor the view.

The audit trail's closed days never change (an entry's ``at`` is the time it is written), so
their rows are kept in ``_local/fleet-activity-<day>`` of ``carecouch_audit`` for good.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from .couch import Database, Doc
from .errors import CouchConflict
from .fleet import DDOC, audit_design, reports_design

# An audit entry is written right after its ``at`` is taken: a day is closed this long after
# its end, once no entry of it can still be in flight.
SETTLE = timedelta(minutes=10)


@functools.cache
def _version(kind: str) -> str:
    design = reports_design() if kind == "reports" else audit_design()
    return str(design["carecouch"]["version"])


def merged(a: Doc, b: Doc) -> Doc:
    """Two ``_stats`` values as one."""
    return {"count": a["count"] + b["count"], "sum": a["sum"] + b["sum"],
            "min": min(a["min"], b["min"]), "max": max(a["max"], b["max"])}


def by_day(rows: list[Doc]) -> list[Doc]:
    """Hour groups folded into day groups (the hour, third in the key, becomes the day's
    first hour, ``<day>T00``)."""
    out: dict[str, Doc] = {}
    for row in rows:
        key = [*row["key"][:2], row["key"][2][:10] + "T00", *row["key"][3:]]
        name = repr(key)
        out[name] = {"key": key, "value": merged(out[name]["value"], row["value"])} \
            if name in out else {"key": key, "value": row["value"]}
    return list(out.values())


def _kept(db: Database, name: str, version: str, seq: Any,
          compute: Callable[[], list[Doc]]) -> list[Doc]:
    """``compute()``, or what ``_local/<name>`` kept of it for this version (and this
    ``update_seq``, when one is given)."""
    stored = db.get_local(name)
    if stored is not None and stored.get("version") == version and stored.get("seq") == seq:
        rows: list[Doc] = stored["rows"]
        return rows
    rows = compute()
    body: Doc = {"version": version, "seq": seq, "rows": rows}
    if stored is not None:
        body["_rev"] = stored["_rev"]
    try:
        db.put_local(name, body)
    except CouchConflict:
        pass  # another reader kept it meanwhile: the same rows
    return rows


def report_rows(db: Database, day: str, first_hour: str, now: datetime) -> list[Doc]:
    """The aggregates view of one day database, grouped ([kind, caseload, hour, ...]); from
    the day's rollup once the day is over (by hour when the window starts inside it)."""
    def live() -> list[Doc]:
        rows: list[Doc] = db.view(DDOC, "aggregates", group_level=5)["rows"]
        return rows

    if day >= now.astimezone(UTC).strftime("%Y-%m-%d"):
        return live()  # today (or ahead of the clock): still changing
    seq = db.info()["update_seq"]
    if first_hour > f"{day}T00":
        return _kept(db, "fleet-hours", _version("reports"), seq, live)
    return _kept(db, "fleet-days", _version("reports"), seq, lambda: by_day(live()))


def activity_rows(db: Database, day: str, first_hour: str, now: datetime) -> list[Doc]:
    """The audit trail's activity ([hour, action, caseload] -> count) of one day from
    ``first_hour``; a closed day's rows are kept for good."""
    def live() -> list[Doc]:
        rows: list[Doc] = db.view(DDOC, "activity", group_level=3, startkey=[f"{day}T00"],
                                  endkey=[f"{day}T23", {}])["rows"]
        return rows

    end = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1)
    rows = live() if now < end + SETTLE else _kept(db, f"fleet-activity-{day}",
                                                   _version("audit"), None, live)
    return [r for r in rows if r["key"][0] >= first_hour]
