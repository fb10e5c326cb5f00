"""The device as an application sees it: records, edits, sync, rejected writes.

Ties the store, the replicator, the credentials provider and the policy hook together, and
stamps every local edit with the clock discipline (design.md, "Records"): ``at`` (device time)
and ``clock_offset_ms`` (server minus device, estimated from server answers).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from carecouch.clock import utc_now

from .credentials import CredentialsProvider
from .errors import DeviceOffline
from .policy import AllowAll, DevicePolicy
from .replication import recovery
from .replication.remote import RemoteDatabase
from .replication.replicator import Replicator, ReplicatorOptions
from .replication.status import SyncReport
from .store.device import DeviceStore
from .store.documents import Doc
from .store.rejections import Rejection, Rejections


class Device:
    def __init__(self, store: DeviceStore, credentials: CredentialsProvider, *,
                 policy: DevicePolicy | None = None, author: str | None = None,
                 options: ReplicatorOptions | None = None,
                 now: Callable[[], str] = utc_now) -> None:
        self.store = store
        self.credentials = credentials
        self.policy = policy or AllowAll()
        self.author = author
        self.replicator = Replicator(store, credentials, policy=self.policy,
                                     options=options or ReplicatorOptions())
        self._now = now

    # -- records ----------------------------------------------------------------------------

    def new_record(self, database: str, record_type: str, fields: Mapping[str, Any]) -> Doc:
        """Create a record with the carecouch id ``<type>:<uuid>`` (made once, here, so a
        retried push can never create a duplicate)."""
        doc: Doc = {**fields, "_id": f"{record_type}:{uuid.uuid4().hex}", "type": record_type}
        doc["_rev"] = self.edit(database, doc)
        return doc

    def edit(self, database: str, doc: Mapping[str, Any]) -> str:
        """Save a new revision of ``doc`` locally (``_rev`` = the revision edited)."""
        stamped = self.stamp(dict(doc))
        self.policy.check_edit(database, stamped)
        return self.store.database(database).put(stamped)

    def delete(self, database: str, doc_id: str, rev: str) -> str:
        return self.edit(database, {"_id": doc_id, "_rev": rev, "_deleted": True})

    def stamp(self, doc: Doc) -> Doc:
        doc["at"] = self._now()
        doc["clock_offset_ms"] = self.replicator.clock.offset_ms()
        doc["device"] = self.store.device_id
        # The user who wrote this revision; the server's validation checks it.
        doc["author"] = self.author or self.credentials.current().username
        return doc

    # -- sync -------------------------------------------------------------------------------

    def sync(self, database: str) -> SyncReport:
        return self.replicator.sync(database)

    def sync_all(self) -> list[SyncReport]:
        return self.replicator.sync_all()

    # -- rejected writes --------------------------------------------------------------------

    def rejections(self, database: str) -> list[Rejection]:
        return Rejections(self.store.database(database)).list()

    def retry_rejected(self, database: str, doc_id: str, rev: str | None = None) -> str:
        """The documented recovery (``*.reread``): re-read, re-apply, and sync again."""
        local = self.store.database(database)
        rejection = Rejections(local).get(doc_id, rev)
        with self._remote(database) as remote:
            return recovery.retry_with_reread(remote, local, rejection, self.stamp)

    def discard_rejected(self, database: str, doc_id: str, rev: str | None = None) -> None:
        local = self.store.database(database)
        rejection = Rejections(local).get(doc_id, rev)
        with self._remote(database) as remote:
            recovery.discard(remote, local, rejection)

    def _remote(self, database: str) -> _RemoteContext:
        if self.store.offline:
            raise DeviceOffline("the device is offline (run `carecouch-device online`)")
        return _RemoteContext(self.replicator.remote_for(self.store.database(database)))


class _RemoteContext:
    def __init__(self, remote: RemoteDatabase) -> None:
        self.remote = remote

    def __enter__(self) -> RemoteDatabase:
        return self.remote

    def __exit__(self, *exc: object) -> None:
        self.remote.close()
