"""The server side of a replication: one remote database, reached through ``carecouch.couch``.

Every request goes through :meth:`RemoteDatabase.call`, which decides once for the whole
replicator:

- **offline mode**: no request leaves the device (:class:`~mobile_stub.errors.DeviceOffline`);
- **transient failures** (no answer, cut connection, 5xx, truncated body) are retried with
  exponential backoff and full jitter; a *step* is retried as a whole, so a push step re-runs
  its ``_revs_diff`` before writing again and never writes a revision twice;
- **an unreachable server**: until the server has answered once in this sync, a connection
  that cannot be made is tried only ``first_contact_attempts`` times, so a device out of
  coverage says so within seconds instead of retrying for a minute (the link that drops in
  the middle of a sync gets the full retry policy);
- **401**: the credentials provider's ``renew`` is called once per sync; a second 401 (or no
  renewal) stops the sync with :attr:`SyncState.UNAUTHORIZED`;
- the ``Date`` header of every answer feeds the clock estimate.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from carecouch.couch import CouchClient, Database, Doc, Timeouts
from carecouch.errors import (
    CouchConflict,
    CouchForbidden,
    CouchServerError,
    CouchUnauthorized,
    CouchUnreachable,
)
from carecouch.sync_states import SyncState

from ..clock import ClockEstimator
from ..credentials import CredentialsProvider
from ..errors import DeviceOffline
from .status import SyncStopped

T = TypeVar("T")
_TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 8          # tries per step before the sync stops as UNREACHABLE
    base_delay: float = 0.25   # seconds; doubled per attempt
    max_delay: float = 10.0
    first_contact_attempts: int = 2  # tries before the server first answered

    def delay(self, attempt: int) -> float:
        # Full jitter: many devices coming back online at once do not retry in lockstep.
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** attempt))


class RemoteDatabase:
    """One database on the server, as the current device user."""

    def __init__(self, server_url: str, name: str, credentials: CredentialsProvider, *,
                 network_allowed: Callable[[], bool], clock: ClockEstimator,
                 retry: RetryPolicy = RetryPolicy(), timeouts: Timeouts | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.server_url = server_url
        self.name = name
        self._provider = credentials
        self._network_allowed = network_allowed
        self._clock = clock
        self._retry = retry
        self._timeouts = timeouts or Timeouts()
        self._sleep = sleep
        self._lock = threading.Lock()
        self._clients: list[CouchClient] = []
        self._client = self._connect(credentials.current().username,
                                     credentials.current().password)
        self._renewals_left = 1
        self.renewed = False
        self.retries = 0
        self.contacted = False  # the server has answered once

    def _connect(self, user: str, password: str) -> CouchClient:
        # retries=0: this class owns the retry policy, so a step is retried as a whole.
        client = CouchClient(self.server_url, user, password, retries=0,
                             timeouts=self._timeouts, max_connections=8,
                             on_server_date=self._clock.observe)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()

    @property
    def username(self) -> str | None:
        return self._client.user

    # -- the one way out --------------------------------------------------------------------

    def call(self, what: str, step: Callable[[Database], T]) -> T:
        """Run ``step`` against the database, with the rules in the module docstring."""
        attempt = 0
        while True:
            if not self._network_allowed():
                raise DeviceOffline("the device is offline (run `carecouch-device online`)")
            client = self._client
            try:
                result = step(client.db(self.name))
                self.contacted = True
                return result
            except CouchUnauthorized as exc:
                self.contacted = True
                self._renew(client, exc)
            except (CouchUnreachable, CouchServerError, json.JSONDecodeError) as exc:
                if isinstance(exc, CouchServerError) and exc.status not in _TRANSIENT_STATUSES:
                    raise
                attempt += 1
                if not self.contacted and isinstance(exc, CouchUnreachable) and \
                        attempt >= self._retry.first_contact_attempts:
                    raise SyncStopped(SyncState.UNREACHABLE, exc.reason) from exc
                if attempt >= self._retry.attempts:
                    raise SyncStopped(SyncState.UNREACHABLE,
                                      f"{what}: gave up after {attempt} tries: {exc}") from exc
                with self._lock:
                    self.retries += 1
                self._sleep(self._retry.delay(attempt))
            except CouchForbidden as exc:
                raise SyncStopped(SyncState.FORBIDDEN, f"{what}: {exc}") from exc

    def _renew(self, failed: CouchClient, exc: CouchUnauthorized) -> None:
        with self._lock:
            if self._client is not failed:
                return  # another thread renewed already: just retry with the new client
            if self._renewals_left <= 0:
                raise SyncStopped(SyncState.UNAUTHORIZED,
                                  f"the server refused the renewed credentials ({exc}); "
                                  "log in again") from exc
            self._renewals_left -= 1
            try:
                fresh = self._provider.renew()
            except Exception as renew_exc:  # the provider's own failure (e.g. bridge down)
                raise SyncStopped(SyncState.UNAUTHORIZED,
                                  f"credentials refused and renewing them failed: {renew_exc}"
                                  ) from renew_exc
            if fresh is None:
                raise SyncStopped(SyncState.UNAUTHORIZED,
                                  f"the server refused the device's credentials ({exc}) and "
                                  "they cannot be renewed; log in again") from exc
            # Old clients stay open until close(): another thread may still be using one.
            self._client = self._connect(fresh.username, fresh.password)
            self.renewed = True

    # -- the requests replication needs -----------------------------------------------------

    def changes(self, what: str, *, since: Any, limit: int, params: dict[str, str],
                body: dict[str, Any] | None) -> Doc:
        query: dict[str, Any] = {"style": "all_docs", "include_docs": True, "limit": limit,
                                 **params}
        if since is not None:
            query["since"] = since if isinstance(since, str) else json.dumps(since)
        return self.call(what, lambda db: db.changes(body=body, **query))

    def bulk_get(self, what: str, refs: list[dict[str, str]]) -> list[Doc]:
        return self.call(what, lambda db: db.bulk_get(refs, revs=True, latest=True,
                                                      attachments=True))

    def open_revs(self, what: str, doc_id: str) -> list[Doc]:
        return self.call(what, lambda db: db.leaf_revisions(doc_id, revs=True,
                                                            attachments=True))

    def get_local(self, what: str, local_id: str) -> Doc | None:
        return self.call(what, lambda db: db.get_local(local_id))

    def put_local(self, what: str, local_id: str, doc: Doc) -> str:
        """Write a ``_local`` document; a 409 (our earlier write landed but its answer was
        lost, or another session wrote) re-reads its ``_rev`` and writes again."""
        def step(db: Database) -> str:
            try:
                return str(db.put_local(local_id, doc)["rev"])
            except CouchConflict:
                current = db.get_local(local_id)
                body = {**doc, "_rev": current["_rev"]} if current else {
                    k: v for k, v in doc.items() if k != "_rev"}
                return str(db.put_local(local_id, body)["rev"])
        return self.call(what, step)

    def design_doc(self, what: str, doc_id: str) -> Doc | None:
        return self.call(what, lambda db: db.get_or_none(doc_id))

    def session(self, what: str) -> Doc:
        return self.call(what, lambda db: db.client.session())

    def exists(self, what: str) -> bool:
        return self.call(what, lambda db: db.exists())
