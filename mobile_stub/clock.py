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
        low, high = server_ms - received_ms, server_ms + _SECOND_MS - received_ms
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
