"""The device's estimate of the server clock, from the ``Date`` header of server answers.

Records carry ``at`` (device time) and ``clock_offset_ms`` (server minus device) so a reviewer
can put edits from devices with wrong clocks in server order. ``Date`` has one-second
resolution: the server's time at the answer lies in ``[Date, Date + 1 s)``, so each answer
bounds the offset to ``[Date - received, Date + 1 s - received]``. The estimate is the middle of
the tightest recent interval; the error is at most half a second plus network latency.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

_SECOND_MS = 1000


class ClockEstimator:
    """Thread-safe: the replicator's requests run on several threads."""

    def __init__(self, offset_ms: int | None = None,
                 now: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._now = now
        self._low: float | None = None
        self._high: float | None = None
        self._saved = offset_ms

    def observe(self, date_header: str) -> None:
        """Feed one ``Date`` header (RFC 1123) seen now."""
        received_ms = self._now() * 1000
        try:
            server_ms = parsedate_to_datetime(date_header).timestamp() * 1000
        except (TypeError, ValueError):
            return  # a malformed header tells us nothing; never fail a sync over it
        self._narrow(server_ms - received_ms, server_ms + _SECOND_MS - received_ms)

    def observe_exchange(self, server_time: datetime, sent: float, received: float) -> None:
        """A precise server time (the bridge's ``server_time``) from the answer to a request
        sent at ``sent`` and answered at ``received`` (device Unix seconds): the server read
        its clock in between, so the offset lies in ``[server - received, server - sent]``."""
        server_ms = server_time.timestamp() * 1000
        self._narrow(server_ms - received * 1000, server_ms - sent * 1000)

    def _narrow(self, low: float, high: float) -> None:
        with self._lock:
            if self._low is None or self._high is None or low > self._high or high < self._low:
                # First sample, or the clock moved (device clock changed): start over.
                self._low, self._high = low, high
            else:
                self._low, self._high = max(self._low, low), min(self._high, high)

    def offset_ms(self) -> int | None:
        """Server minus device, in ms; the last saved value before any answer this run."""
        with self._lock:
            if self._low is None or self._high is None:
                return self._saved
            return round((self._low + self._high) / 2)


def server_now(offset_ms: int | None, now: Callable[[], float] = time.time) -> datetime:
    """The device's best estimate of the server's clock now: what lease and snapshot times
    (written by the bridge's clock) are compared with, so a device clock set wrong neither
    ends an offline window early nor stretches it."""
    return datetime.fromtimestamp(now(), UTC) + timedelta(milliseconds=offset_ms or 0)
