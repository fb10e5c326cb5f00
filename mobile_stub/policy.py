"""The device's policy hook: asked before every sync and every local edit.

:class:`AllowAll` is for a store that is not enrolled with a bridge (development against a
plain CouchDB). An enrolled device enforces the bridge's signed policy snapshot with
:class:`SnapshotPolicy`, offline: which databases may sync, which record types this clinician
may write, no new work once the offline window has passed, and, for exclusive records, a
verified lease token covering the edit. The server enforces the same rules again when the
work syncs; checking on the device means a clinician learns at once, not hours later.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from carecouch.clock import format_utc
from carecouch.ddocs import DEVICE_FILTER
from carecouch.records import Registry

from .errors import PolicyRefused, TokenRefused
from .working_set import Holding, slid_window

if TYPE_CHECKING:
    from carecouch.snapshot import Snapshot, SnapshotDatabase

    from .leases import LeaseBook
    from .replication.filters import ReplicationFilter


class DevicePolicy(Protocol):
    def check_sync(self, database: str) -> None:
        """Raise :class:`~mobile_stub.errors.PolicyRefused` to stop a sync of ``database``."""
        ...

    def check_edit(self, database: str, doc: Mapping[str, Any]) -> None:
        """Raise :class:`~mobile_stub.errors.PolicyRefused` to refuse a local edit."""
        ...

    def holding(self, database: str, bound: ReplicationFilter | None) -> Holding | None:
        """What the device should hold of ``database`` now (None: the policy cannot say, so
        nothing is removed); ``bound`` is the filter the store pulls it through."""
        ...


class AllowAll:
    """No policy: a store not enrolled with a bridge."""

    def check_sync(self, database: str) -> None:
        return None

    def check_edit(self, database: str, doc: Mapping[str, Any]) -> None:
        return None

    def holding(self, database: str, bound: ReplicationFilter | None) -> Holding | None:
        return Holding.bound(bound)


class SnapshotPolicy:
    """The bridge's signed snapshot, enforced offline.

    ``snapshot`` returns the stored snapshot verified afresh (a tampered one raises
    :class:`~mobile_stub.errors.TokenRefused`, itself a refusal); ``now`` is the device's
    estimate of the server clock, which wrote the snapshot's and the leases' times.
    """

    def __init__(self, snapshot: Callable[[], Snapshot], leases: LeaseBook, *,
                 now: Callable[[], datetime], registry: Registry) -> None:
        self._snapshot = snapshot
        self._leases = leases
        self._now = now
        self.registry = registry

    def check_sync(self, database: str) -> None:
        # No offline-window check: a sync is how the device revalidates (its credentials
        # provider asks the bridge for a new snapshot first).
        try:
            snapshot = self._snapshot()
        except TokenRefused as exc:
            raise TokenRefused(f"{exc}; log in again (`carecouch-device login`)") from exc
        self._granted(snapshot, database)

    def check_edit(self, database: str, doc: Mapping[str, Any]) -> None:
        snapshot = self._snapshot()
        now = self._now()
        if now >= snapshot.offline_until:
            raise PolicyRefused(
                f"the offline window ended at {format_utc(snapshot.offline_until)}: connect "
                "and run `carecouch-device login` (or sync) before recording new work")
        granted = self._granted(snapshot, database)
        record_type = str(doc.get("type") or str(doc.get("_id", "")).partition(":")[0])
        if record_type not in granted.record_types:
            raise PolicyRefused(
                f"your access policy does not let you write {record_type!r} records in "
                f"caseload {granted.caseload} (you may write there: "
                f"{', '.join(sorted(granted.record_types)) or 'none'})")
        spec = self.registry.types.get(record_type)
        if spec is not None and spec.record_class == "exclusive":
            self._leases.check_edit(database, doc, spec, user=snapshot.user, now=now)

    def holding(self, database: str, bound: ReplicationFilter | None) -> Holding | None:
        """What the latest snapshot gives: its filter's parameters with the time window slid
        to now (the device minimises offline too), and the attachment retention; nothing
        of a database it no longer grants. An untrusted snapshot says nothing."""
        try:
            snapshot = self._snapshot()
        except TokenRefused:
            return None
        granted = snapshot.database(database)
        if granted is None:
            return Holding(granted=False)
        spec = granted.filter
        query = None
        if spec.get("name") == DEVICE_FILTER:
            params = spec.get("query_params") or {}
            query = slid_window({str(k): str(v) for k, v in params.items()},
                                granted.time_window_seconds, self._now())
        return Holding(query=query,
                       attachment_retention=granted.attachment_retention_seconds)

    @staticmethod
    def _granted(snapshot: Snapshot, database: str) -> SnapshotDatabase:
        granted = snapshot.database(database)
        if granted is None:
            raise PolicyRefused(f"the access policy does not grant {database} to this "
                                "session (log in again if that has changed)")
        return granted
