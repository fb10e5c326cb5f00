"""One sync of one local database with its server: pull, then push, then a status.

The library entry point (the CLI is a thin layer over it):

    replicator = Replicator(store, credentials)
    report = replicator.sync("caseload_north-1")
    if not report.ok: ...   # report.state says why; the next sync resumes from checkpoints

Pull runs first so that a push step's ``_revs_diff`` already sees what the server sent, and a
local conflict made offline is visible on the device as soon as the sync ends.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from carecouch.cli_support import plural
from carecouch.clock import utc_now
from carecouch.couch import Timeouts
from carecouch.ddocs import DEVICE_FILTER, MAIN_DDOC_ID
from carecouch.errors import CouchError
from carecouch.records import Registry, load_registry
from carecouch.sync_states import SyncState
from carecouch.working_set import urgent_selector

from .. import reports as fleet_reports
from .. import rules
from ..clock import ClockEstimator
from ..credentials import CredentialsProvider
from ..errors import DeviceError, DeviceOffline, PolicyRefused
from ..policy import AllowAll, DevicePolicy
from ..store.device import DeviceStore
from ..store.documents import LocalDatabase
from ..working_set import Holding, minimise
from .checkpoints import Checkpointer, CheckpointTrust, LocalSide, RemoteSide
from .filters import DESIGN, ReplicationFilter
from .ids import Direction, replication_id
from .pull import Puller, PullOptions
from .push import Pusher, PushOptions
from .remote import RemoteDatabase, RetryPolicy
from .status import SyncReport, SyncStopped


@dataclass(frozen=True)
class ReplicatorOptions:
    pull: PullOptions = PullOptions()
    push: PushOptions = PushOptions()
    retry: RetryPolicy = RetryPolicy()
    # A connection that cannot be made in 4 s will not be made in 10 (out of coverage, a
    # captive portal): say so soon. Reading a large answer may take long on a slow link.
    timeouts: Timeouts = Timeouts(connect=4.0, read=120.0)


class Replicator:
    def __init__(self, store: DeviceStore, credentials: CredentialsProvider, *,
                 policy: DevicePolicy | None = None,
                 options: ReplicatorOptions = ReplicatorOptions()) -> None:
        # Called after every pulled batch and pushed step with (database, report so far):
        # the command line shows progress on long syncs.
        self.on_progress: Callable[[SyncReport], None] | None = None
        self.store = store
        self.credentials = credentials
        self.policy = policy or AllowAll()
        self.options = options
        self.clock = ClockEstimator(store.clock_offset_ms)
        self._registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = load_registry()
        return self._registry

    def sync(self, database: str, *, pull: bool = True, push: bool = True) -> SyncReport:
        """Pull then push ``database`` once; never raises for a network or server outcome."""
        report = SyncReport(database, started_at=utc_now())
        local = self.store.database(database)
        remote: RemoteDatabase | None = None
        try:
            self.policy.check_sync(database)
            if self.store.offline:
                raise DeviceOffline("the device is offline (run `carecouch-device online`)")
            remote = self.remote_for(local)
            learn_from(remote, self.store, database)
            if pull:
                urgent = _UrgentPull(self, local, remote, report)
                urgent.run()  # before the backlog: on reconnect, new orders arrive first
                puller = Puller(remote, local, _filter(local),
                                self._checkpointer(local, remote, "pull", _filter(local)),
                                self.options.pull)
                report.pull = puller.stats
                progress = self._progress(report)

                def between_batches() -> None:
                    urgent.run_if_due()  # ...and keep arriving while the backlog runs
                    if progress is not None:
                        progress()
                puller.on_progress = between_batches
                try:
                    puller.run()
                finally:
                    report.pull = puller.stats
                    report.checkpoints["pull"] = puller.checkpointer.trust
            if push:
                pusher = Pusher(remote, local, self._checkpointer(local, remote, "push", None),
                                self.options.push)
                report.push = pusher.stats
                pusher.on_progress = self._progress(report)
                try:
                    pusher.run()
                finally:
                    report.push = pusher.stats
                    report.checkpoints["push"] = pusher.checkpointer.trust
                    report.rejected = report.push.doc_write_failures
                    report.refused = pusher.refused
        except SyncStopped as exc:
            report.state, report.message = exc.state, str(exc)
        except DeviceOffline as exc:
            report.state, report.message = SyncState.OFFLINE, str(exc)
        except PolicyRefused as exc:
            report.state, report.message = SyncState.POLICY, str(exc)
        except CouchError as exc:
            report.state, report.message = SyncState.FAILED, str(exc)
        finally:
            if remote is not None:
                report.retries = remote.retries
                report.renewed_credentials = remote.renewed
                report.reached = remote.contacted
                remote.close()
            self.store.save_clock_offset(self.clock.offset_ms())
            self._minimise(local, report)
            report.ended_at = utc_now()
            if report.removed is None or not report.removed.released:
                self.store.set_meta(f"last_sync:{database}",
                                    json.dumps(report.to_json(reasons=False)))
                _remember_restarts(self.store, report)
            self._report(report)
        return report

    def _minimise(self, local: LocalDatabase, report: SyncReport) -> None:
        """After every sync, reached or not: remove what the working set no longer holds
        (mobile_stub/working_set.py); a caseload no longer granted leaves the store."""
        bound = _filter(local)
        holding = self.policy.holding(local.name, bound)
        if holding is None:
            return
        server_rules = rules.DeviceRules(self.store, self.registry).rules_for(local.name)
        removed = minimise(local, holding, server_rules, datetime.now(UTC),
                           Holding.bound(bound).query)
        report.removed = removed
        if removed.released:
            report.state = SyncState.RELEASED
            report.message = (f"the access policy no longer grants {local.name}: its "
                              f"{plural(removed.total, 'record')} "
                              f"{'was' if removed.total == 1 else 'were'} removed from this "
                              "device")
        elif not holding.granted and removed.held_back:
            report.message += (f"; {plural(removed.held_back, 'record')} with changes the "
                               "server has not confirmed "
                               f"{'is' if removed.held_back == 1 else 'are'} kept on this device")

    def sync_all(self, names: list[str] | None = None) -> list[SyncReport]:
        """Sync each database (default: all); once a server has not answered at all, the
        other databases on it are not tried in this round: a device out of coverage learns
        it within seconds, not once per database."""
        reports: list[SyncReport] = []
        silent: set[str] = set()
        for name in names if names is not None else self.store.database_names():
            server = self.store.database(name).server_url
            if server in silent:
                reports.append(SyncReport(name, SyncState.UNREACHABLE,
                                          f"not tried: the server at {server} did not answer",
                                          started_at=utc_now(), ended_at=utc_now()))
                self._report(reports[-1])
                continue
            report = self.sync(name)
            if report.state is SyncState.UNREACHABLE and not report.reached:
                silent.add(server)
            reports.append(report)
        return reports

    def _report(self, report: SyncReport) -> None:
        """Queue the fleet report of this sync (mobile_stub/reports.py); never fails a sync."""
        try:
            fleet_reports.record(self.store, report, self.credentials)
        except (sqlite3.Error, DeviceError, ValueError):
            pass

    # -- wiring -----------------------------------------------------------------------------

    def _progress(self, report: SyncReport) -> Callable[[], None] | None:
        listener = self.on_progress
        return None if listener is None else lambda: listener(report)

    def remote_for(self, local: LocalDatabase) -> RemoteDatabase:
        """The server side of ``local`` as the current user (close it after use)."""
        return RemoteDatabase(local.server_url, local.name, self.credentials,
                              network_allowed=self.store.network_allowed, clock=self.clock,
                              retry=self.options.retry, timeouts=self.options.timeouts)

    def _checkpointer(self, local: LocalDatabase, remote: RemoteDatabase, direction: Direction,
                      filter: ReplicationFilter | None) -> Checkpointer:
        rep_id = replication_id(device_id=self.store.device_id, local_db=local.name,
                                server_url=local.server_url, remote_db=remote.name,
                                direction=direction, filter=filter)
        return Checkpointer(device=LocalSide(local, rep_id), server=RemoteSide(remote, rep_id))


class _UrgentPull:
    """The urgent records of a caseload pulled on their own (docs/device.md, "Critical
    updates first"): ``filter=_selector`` with the registry's urgent types within the device's
    filter (carecouch/working_set.py), a replication with its own checkpoint. Only for a
    database held through the ``carecouch/device`` filter (a caseload's working set)."""

    EVERY = 1.0  # seconds between urgent pulls while a backlog is pulled

    def __init__(self, replicator: Replicator, local: LocalDatabase, remote: RemoteDatabase,
                 report: SyncReport) -> None:
        self.replicator, self.local, self.remote, self.report = replicator, local, remote, report
        bound = _filter(local)
        selector = None
        if bound is not None and bound.kind == DESIGN and bound.name == DEVICE_FILTER:
            selector = urgent_selector(replicator.registry, bound.query_params)
        self.filter = ReplicationFilter.mango(selector) if selector else None
        self._last = 0.0

    def run(self) -> None:
        if self.filter is None:
            return
        puller = Puller(self.remote, self.local, self.filter, self.replicator._checkpointer(
            self.local, self.remote, "pull", self.filter), self.replicator.options.pull)
        try:
            puller.run()
        finally:
            self._last = time.monotonic()
            self.report.urgent = self.report.urgent + puller.stats
            self.report.checkpoints["urgent"] = puller.checkpointer.trust

    def run_if_due(self) -> None:
        if self.filter is not None and time.monotonic() - self._last >= self.EVERY:
            self.run()


def learn_from(remote: RemoteDatabase, store: DeviceStore, database: str) -> None:
    """Read the rules the server runs on this database and the session's roles, so the
    device checks edits as the server will (mobile_stub/rules.py): two small reads."""
    rules.learn(store, database, remote.design_doc("read the record rules", MAIN_DDOC_ID),
                remote.session("read the session").get("userCtx"))


def _filter(local: LocalDatabase) -> ReplicationFilter | None:
    return ReplicationFilter.from_json(json.loads(local.filter_json)) if local.filter_json \
        else None


def last_sync(store: DeviceStore, database: str) -> dict[str, object] | None:
    """The report of the last sync of ``database`` (kept in the clear: counts and states)."""
    raw = store.get_meta(f"last_sync:{database}")
    return None if raw is None else dict(json.loads(raw))


MAX_RESTARTS_KEPT = 20


def checkpoint_restarts(store: DeviceStore, database: str) -> list[dict[str, str]]:
    """The latest syncs of ``database`` that could not use the device's checkpoint because
    the server's copy was missing or altered (checkpoints.py), newest last."""
    raw = store.get_meta(f"checkpoint_restarts:{database}")
    return list(json.loads(raw)) if raw else []


def _remember_restarts(store: DeviceStore, report: SyncReport) -> None:
    # Kept beyond the next sync: a tampered checkpoint is an event someone should look at,
    # not a state the next good sync erases.
    events = [{"at": report.started_at, "direction": direction, "trust": str(trust)}
              for direction, trust in report.checkpoints.items()
              if CheckpointTrust(trust).restarted]
    if events:
        kept = [*checkpoint_restarts(store, report.database), *events][-MAX_RESTARTS_KEPT:]
        store.set_meta(f"checkpoint_restarts:{report.database}", json.dumps(kept))
