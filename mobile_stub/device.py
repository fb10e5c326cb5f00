"""The device as an application sees it: records, edits, sync, rejected writes.

Ties the store, the replicator, the credentials provider and the policy hook together, and
stamps every local edit as the record rules require (docs/design.md, "Records";
docs/record-rules.md): ``at`` (device time), ``clock_offset_ms`` (server minus device,
estimated from server answers), ``device``, ``author`` (the clinician of the CouchDB session,
as the rules read it), and on a mergeable record the per-field ``changed`` stamps, computed
from the revision edited.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from carecouch.clock import format_utc, parse_utc, utc_now
from carecouch.ids import split_session_name
from carecouch.records import Registry, load_registry, new_record_id, stamp_changes
from carecouch.rules import RulesError, shipped_rules

from .credentials import CredentialsProvider
from .errors import BadRecord, DeviceOffline, DocumentNotFound
from .policy import AllowAll, DevicePolicy
from .replication import recovery
from .replication.remote import RemoteDatabase
from .replication.replicator import Replicator, ReplicatorOptions, learn_from
from .replication.status import SyncReport
from .rules import DeviceRules
from .store.device import DeviceStore
from .store.documents import Doc
from .store.rejections import Rejection, Rejections, RejectionState
from .store.replica import ReplicaIO


class Device:
    def __init__(self, store: DeviceStore, credentials: CredentialsProvider, *,
                 policy: DevicePolicy | None = None, author: str | None = None,
                 options: ReplicatorOptions | None = None,
                 now: Callable[[], str] = utc_now, registry: Registry | None = None,
                 signer: Callable[[Doc], Doc] | None = None) -> None:
        self.store = store
        self.credentials = credentials
        self.policy = policy or AllowAll()
        self.author = author
        self.replicator = Replicator(store, credentials, policy=self.policy,
                                     options=options or ReplicatorOptions())
        self._now = now
        self._registry = registry
        self._rules: DeviceRules | None = None
        # An enrolled device signs every revision it writes with its key (Enrolment.
        # sign_record; carecouch/provenance.py); a development store has no key.
        self._signer = signer

    # -- records ----------------------------------------------------------------------------

    def new_record(self, database: str, record_type: str, fields: Mapping[str, Any]) -> Doc:
        """Create a record with its carecouch id (``new_record_id``: made once, here, so a
        retried push can never create a duplicate; an append-only record's id names the
        CouchDB account of this session, the only one the rules let write it)."""
        spec = self.registry.types.get(record_type)
        if spec is not None and spec.record_class == "exclusive":
            raise BadRecord(f"a {record_type} is exclusive: the bridge creates it (online: "
                            f"`carecouch-device record new {record_type} ...` on an enrolled "
                            "device), then the clinician leases and completes it")
        record_id = new_record_id(self.registry, record_type,
                                  self.credentials.current().username) \
            if spec is not None else f"{record_type}:{uuid.uuid4().hex}"
        doc: Doc = {**fields, "_id": record_id, "type": record_type}
        doc["_rev"] = self.edit(database, doc)
        return doc

    def edit(self, database: str, doc: Mapping[str, Any]) -> str:
        """Save a new revision of ``doc`` locally (``_rev`` = the revision edited), once the
        snapshot policy and the server's own record rules accept it (:mod:`.rules`);
        otherwise nothing is saved and the refusal says every problem.

        An exclusive record in a terminal status is final (the server refuses any change:
        exclusive.terminal), and a second edit of one made while offline replaces the first
        rather than stacking on it (``put_replacing_unsent``: the server judges the edit
        against the revision it was made on)."""
        stamped = self.prepare(database, doc)
        local = self.store.database(database)
        spec = self.registry.types.get(str(stamped.get("type")))
        exclusive = spec is not None and spec.record_class == "exclusive"
        if exclusive:
            assert spec is not None
            doc_id, rev = str(stamped.get("_id")), stamped.get("_rev")
            if rev in {leaf.rev for leaf in local.leaves(doc_id)}:
                status = local.get(doc_id, str(rev)).get("status")
                if status in spec.terminal:
                    raise BadRecord(f"{doc_id} is {status}, which is final: a new decision "
                                    "is a new record")
        self.policy.check_edit(database, stamped)
        credentials = self.credentials.current()
        # For an exclusive record replacing an unsent edit, checked against that edit: it
        # carries the lease and status of the revision the server holds (the device cannot
        # change either), whose body the device no longer keeps.
        self.rules.check(local, stamped, credentials.username,
                         list(credentials.roles) if credentials.roles is not None else None)
        return local.put_replacing_unsent(stamped) if exclusive else local.put(stamped)

    def update(self, database: str, doc_id: str, changes: Mapping[str, Any],
               remove: Iterable[str] = ()) -> str:
        """Change some fields of the current revision (e.g. a care plan's goals)."""
        doc = self._current(database, doc_id)
        doc.update(changes)
        for name in remove:
            doc.pop(name, None)
        return self.edit(database, doc)

    def complete(self, database: str, doc_id: str, status: str,
                 fields: Mapping[str, Any] | None = None) -> str:
        """Complete an exclusive record as its lease holder: a terminal ``status``,
        ``completed_by`` the clinician and ``completed_at`` now, on the server clock as the
        device estimates it (the lease's times are the bridge's). The policy checks the
        lease before the edit is saved.

        The estimate can be off by a fraction of a second; a completion is never dated before
        the lease it needs was granted, because the device acts only after receiving it."""
        doc = self._current(database, doc_id)
        spec = self.registry.types.get(str(doc.get("type")))
        if spec is None or spec.record_class != "exclusive":
            raise BadRecord(f"{doc_id} is not an exclusive record; only those are completed")
        if status not in spec.terminal:
            raise BadRecord(f"{status!r} does not complete a {spec.name} (use one of: "
                            f"{', '.join(spec.terminal)})")
        server_time = parse_utc(self._now()) + timedelta(
            milliseconds=self.replicator.clock.offset_ms() or 0)
        lease = doc.get("lease")
        if isinstance(lease, dict) and isinstance(lease.get("granted_at"), str):
            server_time = max(server_time, parse_utc(lease["granted_at"]))
        doc.update(fields or {})
        doc.update(status=status, completed_by=self.writer(),
                   completed_at=format_utc(server_time))
        return self.edit(database, doc)

    def delete(self, database: str, doc_id: str, rev: str) -> str:
        return self.edit(database, {"_id": doc_id, "_rev": rev, "_deleted": True})

    def stamp(self, database: str, doc: Doc) -> Doc:
        doc["at"] = self._now()
        doc["clock_offset_ms"] = self.replicator.clock.offset_ms()
        doc["device"] = self.store.device_id
        doc["author"] = self.writer()
        stamps = stamp_changes(self.registry, doc, self._base(database, doc), doc["author"],
                               doc["at"])
        if stamps is not None:
            doc[self.registry.metadata_field] = stamps
        return doc

    def prepare(self, database: str, doc: Mapping[str, Any]) -> Doc:
        """``doc`` as this device saves it: stamped, its derived fields filled in, signed."""
        stamped = self.stamp(database, dict(doc))
        self._derive(database, stamped)
        if self._signer is not None and not stamped.get("_deleted"):
            stamped = self._signer(stamped)  # last: it covers every field as saved
        return stamped

    def _derive(self, database: str, doc: Doc) -> None:
        """Fill a field the registry derives (an observation's NEWS2) that the clinician left
        out, with the rule that the server will check it against (envelope.js)."""
        spec = self.registry.types.get(str(doc.get("type")))
        rules = self.rules.rules_for(database) or shipped_rules()
        for field in spec.fields.values() if spec is not None else ():
            if field.derive is not None and field.name not in doc:
                try:
                    value = rules.call(f"lib/validate/{field.derive}", "derive", doc)
                except RulesError:
                    continue
                if value is not None:  # vitals it cannot score: the check says what is wrong
                    doc[field.name] = value

    def news2(self, database: str, doc: Mapping[str, Any]) -> dict[str, Any] | None:
        """The NEWS2 score of an observation's vitals with the chart's clinical response
        (news2.js), or None for a record that has no such score."""
        spec = self.registry.types.get(str(doc.get("type")))
        if spec is None or not any(f.derive == "news2" for f in spec.fields.values()):
            return None
        rules = self.rules.rules_for(database) or shipped_rules()
        result: dict[str, Any] = rules.call("lib/validate/news2", "score", dict(doc))
        return result

    def writer(self) -> str:
        """The clinician writing: for a bridge session ``alice~tablet-7``, ``alice`` (the
        record rules read the author from the session name the same way)."""
        if self.author:
            return self.author
        username = self.credentials.current().username
        session = split_session_name(username)
        return session[0] if session else username

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = load_registry()
        return self._registry

    @property
    def rules(self) -> DeviceRules:
        if self._rules is None:
            self._rules = DeviceRules(self.store, self.registry)
        return self._rules

    def _current(self, database: str, doc_id: str) -> Doc:
        doc = self.store.database(database).get(doc_id)
        if doc.get("_deleted"):
            raise DocumentNotFound(f"{doc_id} was deleted in {database}")
        return doc

    def _base(self, database: str, doc: Doc) -> Doc | None:
        """The revision ``doc`` edits, if the device holds it."""
        rev = doc.get("_rev")
        if not isinstance(rev, str):
            return None
        try:
            return self.store.database(database).get(str(doc["_id"]), rev)
        except DocumentNotFound:
            return None  # saving will say why (not a current revision)

    # -- sync -------------------------------------------------------------------------------

    def sync(self, database: str) -> SyncReport:
        return self.replicator.sync(database)

    def sync_all(self, names: list[str] | None = None) -> list[SyncReport]:
        return self.replicator.sync_all(names)

    # -- rejected writes --------------------------------------------------------------------

    def rejections(self, database: str) -> list[Rejection]:
        return Rejections(self.store.database(database)).list()

    def retry_rejected(self, database: str, doc_id: str, rev: str | None = None) -> str:
        """The documented recovery (``*.reread``): re-read, re-apply, and sync again."""
        local = self.store.database(database)
        rejection = Rejections(local).get(doc_id, rev)
        with self._remote(database) as remote:
            return recovery.retry_with_reread(remote, local, rejection,
                                              lambda doc: self.prepare(database, doc))

    def discard_rejected(self, database: str, doc_id: str, rev: str | None = None) -> None:
        """Take a refused revision out (its content stays in the rejection log); offline
        too (recovery.discard)."""
        local = self.store.database(database)
        rejection = Rejections(local).get(doc_id, rev)
        if self.store.offline:
            recovery.discard(None, local, rejection)
            return
        with self._remote(database) as remote:
            recovery.discard(remote, local, rejection)

    def correct_rejected(self, database: str, doc_id: str, changes: Mapping[str, Any],
                         remove: Iterable[str] = (), rev: str | None = None) -> Doc:
        """The way out of a refused append-only record: a new record with its content and
        ``changes`` (checked by the rules now, like every edit), amending it when the server
        holds it; then the refused revision is discarded. Works offline."""
        local = self.store.database(database)
        rejection = Rejections(local).get(doc_id, rev)
        fields = recovery.correction(local, rejection, self.registry, changes, remove)
        corrected = self.new_record(database, str(rejection.doc["type"]), fields)
        remote = None if self.store.offline else self.replicator.remote_for(local)
        try:
            recovery.discard(remote, local, rejection, state=RejectionState.CORRECTED,
                             resolved_by=str(corrected["_id"]))
        finally:
            if remote is not None:
                remote.close()
        return corrected

    def learn_rules(self, database: str) -> None:
        """Read now, online, the rules the server runs on ``database`` and the session's
        roles (every sync does too), so edits are checked as the server will check them."""
        with self._remote(database) as remote:
            learn_from(remote, self.store, database)
        self.store.save_clock_offset(self.replicator.clock.offset_ms())

    def refresh(self, database: str, doc_id: str) -> None:
        """Read the server's current revisions of one record into the store now (e.g. the
        revision carrying a lease just granted), without waiting for the next sync."""
        local = self.store.database(database)
        with self._remote(database) as remote:
            ReplicaIO(local).store(recovery.reread(remote, local, doc_id))

    def attachment(self, database: str, doc_id: str, name: str) -> bytes:
        """The data of attachment ``name`` of a record's current revision: from the store,
        or, once the attachment retention took it off the device, from the server (online),
        checked against the stub's digest and kept again, so its retention starts over."""
        local = self.store.database(database)
        doc = self._current(database, doc_id)
        att = (doc.get("_attachments") or {}).get(name)
        if not isinstance(att, dict):
            raise DocumentNotFound(f"{doc_id} has no attachment {name!r}")
        if "data" in att:
            return attachment_bytes(att, doc_id, name)
        if self.store.offline:
            raise DeviceOffline(f"{name} of {doc_id} was taken off this device after its "
                                "retention; go online (`carecouch-device online`) to fetch "
                                "it from the server again")
        with self._remote(database) as remote:
            fetched = remote.call(f"fetch {name} of {doc_id}", lambda db: db.get(
                doc_id, rev=doc["_rev"], attachments=True))
        data = (fetched.get("_attachments") or {}).get(name)
        if not isinstance(data, dict) or "data" not in data or \
                data.get("digest") != att.get("digest"):
            raise DocumentNotFound(f"the server's {doc_id} {doc['_rev']} has no attachment "
                                   f"{name!r} matching this device's record")
        content = attachment_bytes(data, doc_id, name)
        local.keep_attachment(doc_id, doc["_rev"], name, data)
        return content

    def _remote(self, database: str) -> _RemoteContext:
        if self.store.offline:
            raise DeviceOffline("the device is offline (run `carecouch-device online`)")
        return _RemoteContext(self.replicator.remote_for(self.store.database(database)))


def attachment_bytes(att: Mapping[str, Any], doc_id: str, name: str) -> bytes:
    """An inline attachment's data, checked against its ``md5-`` digest when it has one."""
    try:
        content = base64.b64decode(str(att["data"]), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRecord(f"{name} of {doc_id} is not valid base64 ({exc})") from exc
    digest = att.get("digest")
    if isinstance(digest, str) and digest.startswith("md5-"):
        actual = "md5-" + base64.b64encode(hashlib.md5(content).digest()).decode()  # noqa: S324
        if actual != digest:
            raise BadRecord(f"{name} of {doc_id} does not match its digest")
    return content


class _RemoteContext:
    def __init__(self, remote: RemoteDatabase) -> None:
        self.remote = remote

    def __enter__(self) -> RemoteDatabase:
        return self.remote

    def __exit__(self, *exc: object) -> None:
        self.remote.close()
