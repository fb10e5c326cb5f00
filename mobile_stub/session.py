"""A clinician's session on an enrolled device: the CouchDB credentials and the signed policy
snapshot the bridge issues (``POST /v1/credentials``), kept sealed in the store.

:class:`BridgeSession` is the replicator's credentials provider. ``current()`` gives the
stored CouchDB user, first asking the bridge for a new one when it has expired or the
snapshot's offline window has passed (and the network allows); ``renew()`` asks the bridge
once after CouchDB answered 401 (the replicator calls it at most once per sync). A bridge
answer is trusted only once its snapshot verifies against the keys pinned at enrolment and
agrees with the rest of the answer; until then nothing is stored.

When the bridge says the device was revoked, :attr:`BridgeSession.revoked` is set and the
error raised; whoever runs the operation wipes the store once it has stopped (a sync's
threads may still be using the store when the renewal is refused).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from carecouch.clock import format_utc, parse_utc
from carecouch.records import load_registry

from . import enrolment
from .bridge_api import Answer
from .clock import ClockEstimator, server_now
from .credentials import Credentials
from .device import Device
from .errors import DeviceError, DeviceRevoked, NotLoggedIn, SecretDamaged, TokenRefused
from .leases import LeaseBook
from .policy import SnapshotPolicy
from .replication import ReplicationFilter, ReplicatorOptions
from .snapshot import Snapshot, verify_snapshot
from .store.device import DeviceStore

SESSION = "session"   # sealed: the bridge's credentials answer, as below
BREAK_GLASS = "break_glass"  # sealed: this device's break-glass grants and their review
KEPT = ("couchdb_url", "username", "password", "roles", "issued_at", "expires_at",
        "databases", "snapshot", "policy_version")
# Renew this long before the credential expires: never start a sync on one about to lapse.
EXPIRY_MARGIN = timedelta(seconds=60)
WINDOW_PARAM = "not_before"


class BridgeSession:
    def __init__(self, store: DeviceStore, *, token: str | None = None,
                 now: Callable[[], float] = time.time) -> None:
        self.store = store
        self.enrolment = enrolment.load(store)
        self.leases = LeaseBook(store, self.enrolment.keys)
        self._token = token or _readable(store, enrolment.IDP_TOKEN)
        self._offset = store.clock_offset_ms  # read here: renew() may run on another thread
        self._now = now
        self._lock = threading.RLock()
        raw = _readable(store, SESSION)
        self._state: dict[str, Any] | None = json.loads(raw) if raw else None
        self._refreshed = False
        self.revoked: DeviceRevoked | None = None

    # -- talking to the bridge --------------------------------------------------------------

    def post(self, path: str, body: dict[str, Any]) -> Answer:
        """A signed request as this device and clinician; remembers a revocation."""
        client = self.enrolment.client(self.store, self._token, self._offset)
        try:
            return client.post(path, body)
        except DeviceRevoked as exc:
            self.revoked = exc
            raise
        finally:
            client.close()

    def login(self) -> dict[str, Any]:
        """New credentials and snapshot from the bridge; binds the databases they grant."""
        offset = self._issue()
        self._offset = offset
        self.store.save_clock_offset(offset)
        self.bind_databases()
        return self.describe()

    def break_glass(self, caseload: str, justification: str) -> dict[str, Any]:
        """Emergency access to ``caseload`` (online; the bridge audits it for review): new
        credentials and snapshot that include it. The grant is kept and flagged in
        ``status`` until the device hears it was reviewed (:meth:`refresh_reviews`)."""
        answer = self.post("/v1/break-glass", {"caseload": caseload,
                                               "justification": justification})
        self._offset = self._keep(answer)
        self.store.save_clock_offset(self._offset)
        self.bind_databases()
        flag = answer.body.get("break_glass") or {}
        grant = {"id": str(flag.get("id")), "caseload": caseload,
                 "at": str(flag.get("requested_at")), "expires_at": self._state["expires_at"]
                 if self._state else None, "review": "pending"}
        self._save_grants([*self.break_glass_grants(), grant])
        return grant

    def break_glass_grants(self) -> list[dict[str, Any]]:
        """This device's break-glass grants, as it last heard of their review."""
        raw = _readable(self.store, BREAK_GLASS)
        return list(json.loads(raw)) if raw else []

    def refresh_reviews(self) -> list[dict[str, Any]]:
        """Ask the bridge which of the pending grants were reviewed (one signed request,
        only when some are pending)."""
        grants = self.break_glass_grants()
        pending = [g for g in grants if g["review"] == "pending"]
        if not pending:
            return grants
        answer = self.post("/v1/break-glass/reviews", {"since": min(g["at"] for g in pending)})
        heard = {g["id"]: g for g in answer.body.get("grants") or [] if isinstance(g, dict)}
        for grant in grants:
            news = heard.get(grant["id"])
            if news is not None and news.get("review") != "pending":
                grant.update(review=news["review"], reviewed_at=news.get("reviewed_at"))
        self._save_grants(grants)
        return grants

    def _save_grants(self, grants: list[dict[str, Any]]) -> None:
        self.store.secrets.put_many({BREAK_GLASS: json.dumps(grants)})

    def _issue(self) -> int | None:
        """New credentials (``POST /v1/credentials``), verified and kept; returns the clock
        offset the answer's ``server_time`` gives."""
        return self._keep(self.post("/v1/credentials", {}))

    def _keep(self, answer: Answer) -> int | None:
        """Verify a credentials answer and keep it; returns the clock offset it gives."""
        state = {key: answer.body.get(key) for key in KEPT}
        self._check(state)
        clock = ClockEstimator(self._offset)
        try:
            clock.observe_exchange(parse_utc(str(answer.body.get("server_time"))),
                                   answer.sent, answer.received)
        except ValueError:
            pass  # no usable server_time: keep the estimate we had
        with self._lock:
            self.store.secrets.put_many({SESSION: json.dumps(state), enrolment.IDP_TOKEN:
                                         self._token})
            self._state = state
        return clock.offset_ms()

    def _check(self, state: dict[str, Any]) -> Snapshot:
        """The answer's snapshot, verified, and the answer agreeing with it and well formed
        (what is kept here is used later without looking again)."""
        snapshot = verify_snapshot(str(state["snapshot"]), self.enrolment.keys,
                                   self.enrolment.device_id)
        databases = state["databases"] if isinstance(state["databases"], list) else [None]
        try:
            filters = [_filter(db) for db in databases]
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise TokenRefused(f"the bridge's answer names a database or filter the device "
                               f"cannot use ({exc})") from exc
        if (state["username"] != snapshot.username or not isinstance(state["password"], str)
                or not isinstance(state["couchdb_url"], str)
                or not {name for name, _ in filters} <= {d.name for d in snapshot.databases}):
            raise TokenRefused("the bridge's answer does not agree with its signed snapshot")
        return snapshot

    # -- the credentials provider -----------------------------------------------------------

    def current(self) -> Credentials:
        with self._lock:
            if not self._refreshed and self._due() and self.store.network_allowed():
                self._refreshed = True  # once per session: a failing bridge is not hammered
                try:
                    self._offset = self._issue()
                except DeviceError:
                    pass  # the stored user may still work; a 401 then reports why not
            return self._credentials()

    def renew(self) -> Credentials | None:
        with self._lock:
            self._offset = self._issue()
            return self._credentials()

    def _credentials(self) -> Credentials:
        state = self._required()
        roles = state.get("roles")
        return Credentials(str(state["username"]), str(state["password"]),
                           str(state["expires_at"]),
                           tuple(map(str, roles)) if isinstance(roles, list) else None)

    def _due(self) -> bool:
        """Expired credential or offline window: time to revalidate with the bridge."""
        try:
            snapshot = self.snapshot()
        except TokenRefused:
            return True  # a new, valid snapshot is the cure
        now = self.server_now()
        return (now >= snapshot.credential_expires_at - EXPIRY_MARGIN
                or now >= snapshot.offline_until)

    # -- what the session says --------------------------------------------------------------

    def _required(self) -> dict[str, Any]:
        if self._state is None:
            raise NotLoggedIn("no credentials from the bridge yet (run `carecouch-device "
                              "login`)")
        return self._state

    def snapshot(self) -> Snapshot:
        """The stored snapshot, verified now (never trusted from an earlier check)."""
        return verify_snapshot(str(self._required()["snapshot"]), self.enrolment.keys,
                               self.enrolment.device_id)

    def server_now(self) -> datetime:
        return server_now(self._offset, self._now)

    def report_expiries(self) -> dict[str, str | None]:
        """For the sync reports (mobile_stub/reports.py): when the credential and the
        offline window end, from the stored snapshot; no request."""
        try:
            snapshot = self.snapshot()
        except (NotLoggedIn, TokenRefused):
            return {"credential_expires_at": None, "offline_until": None}
        return {"credential_expires_at": format_utc(snapshot.credential_expires_at),
                "offline_until": format_utc(snapshot.offline_until)}

    def caseload_of(self, database: str) -> str:
        granted = self.snapshot().database(database)
        if granted is None:
            raise TokenRefused(f"the access policy does not grant {database} to this session")
        return granted.caseload

    def describe(self) -> dict[str, Any]:
        """For ``status``: who, until when, and the offline-window deadline."""
        data: dict[str, Any] = {"bridge": self.enrolment.bridge_url,
                                "device": self.enrolment.device_id, "logged_in": False}
        if self._state is None:
            return data
        data.update(logged_in=True, username=self._state["username"],
                    credential_expires_at=self._state["expires_at"])
        now = self.server_now()
        try:
            snapshot = self.snapshot()
        except TokenRefused as exc:
            return {**data, "snapshot_error": str(exc)}
        return {**data, "snapshot": snapshot.to_json(),
                "credential_expired": now >= snapshot.credential_expires_at,
                "offline_until": format_utc(snapshot.offline_until),
                "offline_window_passed": now >= snapshot.offline_until,
                "leases": self.leases.held(), "break_glass": self.break_glass_grants()}

    # -- the device with this session -------------------------------------------------------

    def bind_databases(self) -> None:
        """Hold a local copy of every database the session grants, pulled through the
        filter the bridge hands out. Databases no longer granted stay (unsynced work is
        never dropped) but the snapshot policy refuses to sync them."""
        state = self._required()
        for name, new in map(_filter, state["databases"]):
            old = self._bound_filter(name)
            chosen = old if old is not None and _window_slid(old, new) else new
            self.store.add_database(name, str(state["couchdb_url"]), chosen.canonical())

    def _bound_filter(self, name: str) -> ReplicationFilter | None:
        if name not in self.store.database_names():
            return None
        raw = self.store.database(name).filter_json
        return ReplicationFilter.from_json(json.loads(raw)) if raw else None

    def device(self, *, options: ReplicatorOptions | None = None) -> Device:
        """The device working as this session's clinician under its snapshot."""
        registry = load_registry()
        policy = SnapshotPolicy(self.snapshot, self.leases, now=self.server_now,
                                registry=registry)
        return Device(self.store, self, policy=policy, options=options, registry=registry,
                      signer=self.enrolment.sign_record)


def _readable(store: DeviceStore, name: str) -> str | None:
    """A session secret, or None when it does not open: a damaged session is no session
    (the next login replaces it); only the enrolment's own secrets cannot be replaced."""
    try:
        return store.secrets.get(name)
    except SecretDamaged:
        return None


def _filter(granted: Any) -> tuple[str, ReplicationFilter]:
    """A database of the bridge's answer: its name and the filter to pull it through."""
    spec = granted["filter"]
    params = spec.get("query_params") or {}
    if not isinstance(granted["name"], str) or not isinstance(params, dict):
        raise TypeError("a database needs a name and filter query parameters")
    return granted["name"], ReplicationFilter.design(
        str(spec["name"]), **{str(k): str(v) for k, v in params.items()})


def _window_slid(old: ReplicationFilter, new: ReplicationFilter) -> bool:
    """True when ``new`` differs from ``old`` only by a later ``not_before``.

    The time window is "now minus N days" at each issuance; taking every new value would
    change the replication id (it includes the filter) and restart the pull from zero at
    every login. Keeping the first value holds on to a few days' more old records and the
    checkpoints; a narrower or wider grant (types, patients, a longer window) is a new
    filter and a new replication.
    """
    if (old.kind, old.name) != (new.kind, new.name):
        return False
    rest_old = {k: v for k, v in old.query_params.items() if k != WINDOW_PARAM}
    rest_new = {k: v for k, v in new.query_params.items() if k != WINDOW_PARAM}
    before, after = old.query_params.get(WINDOW_PARAM), new.query_params.get(WINDOW_PARAM)
    return rest_old == rest_new and before is not None and after is not None and before <= after
