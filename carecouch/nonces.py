"""Single-use request nonces, kept in CouchDB so that every bridge instance refuses a replay.

A nonce is claimed by creating the document ``<device>:<nonce>``: CouchDB's MVCC lets exactly
one create succeed, so a second use of the nonce (a replay, on whichever instance it lands)
gets 409. Nonces go into one admin-only database per UTC day of the request's (signed)
timestamp, ``carecouch_nonces_YYYYMMDD``: a replay carries the same timestamp, so it lands in
the same database, and a whole day is dropped at once when no timestamp of it can be accepted
any more (no tombstones pile up, as deleting single documents would leave).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from .couch import CouchClient
from .errors import CouchConflict, CouchNotFound
from .security import ensure_admin_only_db

PREFIX = "carecouch_nonces_"


def nonce_db(timestamp: int) -> str:
    return PREFIX + datetime.fromtimestamp(timestamp, UTC).strftime("%Y%m%d")


class NonceStore:
    def __init__(self, admin: CouchClient) -> None:
        self.client = admin
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, device: str, nonce: str, timestamp: int) -> bool:
        """True the first time ``nonce`` is used by ``device``; False for a replay."""
        name = nonce_db(timestamp)
        db = self.client.db(name)
        doc = {"_id": f"{device}:{nonce}", "device": device, "ts": timestamp}
        for attempt in range(2):
            try:
                db.put(doc)
                return True
            except CouchConflict:
                return False
            except CouchNotFound:
                if attempt:
                    raise
                self._ensure(name, force=True)
        return False  # pragma: no cover

    def _ensure(self, name: str, *, force: bool = False) -> None:
        with self._lock:
            if name in self._known and not force:
                return
        ensure_admin_only_db(self.client, name)
        with self._lock:
            self._known.add(name)

    def drop_old(self, now: datetime | None = None, *, keep_days: int = 2) -> list[str]:
        """Delete the nonce databases of days no accepted timestamp can fall on any more."""
        now = now or datetime.now(UTC)
        oldest = (now - timedelta(days=keep_days - 1)).strftime("%Y%m%d")
        dropped = []
        for name in self.client.all_dbs():
            day = name.removeprefix(PREFIX)
            if name.startswith(PREFIX) and day.isdigit() and day < oldest:
                if self.client.db(name).destroy(missing_ok=True):
                    dropped.append(name)
                with self._lock:
                    self._known.discard(name)
        return dropped
