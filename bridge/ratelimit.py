"""Per-device and per-user rate limits: in-process token buckets.

Each bridge process keeps its own buckets, so with N instances (or gunicorn workers) behind a
load balancer a client gets up to N times the configured rate. That is the accepted trade:
the limit protects CouchDB and the audit trail from a runaway or hostile client, not a quota,
and keeping it in process keeps the bridge free of state outside CouchDB (docs/bridge.md).
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from .errors import ApiError

MAX_BUCKETS = 50_000


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    def __init__(self, count: int, seconds: float) -> None:
        self.capacity = float(count)
        self.rate = count / seconds  # tokens per second
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> None:
        """Spend one token of ``key``'s bucket, or raise 429 with ``Retry-After``."""
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._prune(now)
                bucket = self._buckets[key] = _Bucket(self.capacity, now)
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return
            wait = math.ceil((1 - bucket.tokens) / self.rate)
        kind = key.split(":", 1)[0]
        raise ApiError(429, "rate_limited", f"too many requests for this {kind}; retry in "
                       f"{wait} s", {"retry_after": wait}, {"Retry-After": str(wait)})

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled (they are the same as new ones)."""
        full = [k for k, b in self._buckets.items()
                if b.tokens + (now - b.stamp) * self.rate >= self.capacity]
        for key in full:
            del self._buckets[key]
