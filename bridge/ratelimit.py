"""In-process token buckets: per user and per device, and the failure budget per address.

Each bridge process keeps its own buckets, so with N instances (or gunicorn workers) behind a
load balancer a client gets up to N times the configured rate. That is the accepted trade:
the limit protects CouchDB and the audit trail from a runaway or hostile client, not a quota,
and keeping it in process keeps the bridge free of state outside CouchDB (docs/bridge.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .errors import ApiError

MAX_BUCKETS = 50_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """``count`` tokens per ``seconds``, at most ``count`` at once, one bucket per key.

    Memory is bounded by ``max_buckets`` whatever the callers send: past it, the least
    recently used bucket is forgotten (O(1)). Forgetting only ever gives that key a fresh
    bucket, and reaching it again takes ``max_buckets`` other keys in between. ``clock`` is
    monotonic seconds (tests pass their own, to refill buckets without sleeping).
    """

    def __init__(self, count: int, seconds: float, *, what: str = "requests",
                 clock: Callable[[], float] = time.monotonic,
                 max_buckets: int = MAX_BUCKETS) -> None:
        self.capacity = float(count)
        self.rate = count / seconds  # tokens per second
        self.what = what  # how the 429 names what was spent: "requests", "failed requests"
        self.clock = clock
        self.max_buckets = max_buckets
        # Least recently used first: the bucket to forget is always at the front.
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> None:
        """Spend one token of ``key``'s bucket, or raise 429 with ``Retry-After``."""
        with self._lock:
            bucket = self._refilled(key, create=True)
            assert bucket is not None
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return
            wait = self._wait(bucket)
        self._refuse(key, wait)

    def check(self, key: str) -> None:
        """429 if ``key`` has no token left. Spends nothing and makes no bucket, so callers
        that never fail cost no memory and are never limited by their own checks."""
        with self._lock:
            bucket = self._refilled(key, create=False)
            if bucket is None or bucket.tokens >= 1:
                return
            wait = self._wait(bucket)
        self._refuse(key, wait)

    def spend(self, key: str) -> None:
        """Spend one token whatever is left (the event already happened): the next
        :meth:`check` refuses once the bucket is empty."""
        with self._lock:
            bucket = self._refilled(key, create=True)
            assert bucket is not None
            bucket.tokens = max(0.0, bucket.tokens - 1)

    def _refilled(self, key: str, *, create: bool) -> _Bucket | None:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if not create:
                return None
            bucket = self._buckets[key] = _Bucket(self.capacity, now)
            while len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        return bucket

    def _wait(self, bucket: _Bucket) -> int:
        return max(1, math.ceil((1 - bucket.tokens) / self.rate))

    def _refuse(self, key: str, wait: int) -> None:
        kind = key.split(":", 1)[0]
        raise ApiError(429, "rate_limited", f"too many {self.what} for this {kind}; retry "
                       f"in {wait} s", {"retry_after": wait}, {"Retry-After": str(wait)})
