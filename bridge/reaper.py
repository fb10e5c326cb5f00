"""The reaper: deletes expired device-session credentials and old nonce databases.

It runs in every bridge process from the moment the app is built, every
``CARECOUCH_BRIDGE_REAP_INTERVAL`` seconds (several instances reaping the same user is
harmless: the second delete finds nothing). While any bridge process runs, a credential
therefore works at most one interval, plus one reaper pass and CouchDB's auth-cache
eviction, after its ``expires_at`` (docs/bridge.md, "How long a credential outlives its
expiry"). ``carecouch credentials reap`` does one pass by hand.

Nothing may stop the thread for good: that bound is only as good as the reaper is alive.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from carecouch.couch import CouchClient
from carecouch.errors import CarecouchError
from carecouch.nonces import NonceStore
from carecouch.revocation import reap

log = logging.getLogger("carecouch.bridge")
ACTOR = "bridge-reaper"


class Reaper:
    def __init__(self, admin: CouchClient, nonces: NonceStore, interval: float) -> None:
        self.admin = admin
        self.nonces = nonces
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # More periodic work for the same thread (fleet retention and samples: bridge/fleet.py)
        self.tasks: list[Callable[[], None]] = []

    def start(self) -> None:
        """Start the thread unless it runs; also after a fork, which keeps only the thread
        that forked (gunicorn --preload builds the app before it forks its workers)."""
        with self._lock:
            if self._stop.is_set() or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(target=self._run, name="carecouch-reaper",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()

    def run_once(self) -> None:
        """One pass; a failure is logged and the next pass tries again."""
        try:
            reaped = reap(self.admin, ACTOR)
            self.nonces.drop_old()
            for task in self.tasks:
                task()
            if reaped:
                log.info("reaped %d expired credentials", len(reaped))
        except CarecouchError as exc:  # CouchDB away for a moment: try next round
            log.warning("reaper pass failed: %s", exc)
        except Exception:  # a bug must not end reaping in this process for good
            log.exception("reaper pass failed")
