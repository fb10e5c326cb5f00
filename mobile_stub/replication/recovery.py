"""Recovering a refused write: every refusal has a way out (docs/device.md).

- ``<kind>.reread`` (e.g. ``exclusive.reread``: the server could not see the record's previous
  state, so it cannot check the edit): re-read the record from the server, re-apply the
  device's edit on top of the server's current revision, and push again (online).
- an append-only record (which nobody may change): a correction, a new record with the
  refused content and the clinician's changes, that ``amends`` the record when the server holds
  it; the refused revision is then discarded.
- anything else: a person edits the record and saves again, or discards the refused revision.

Discarding takes out only what the server never held (the refused branch); the refused body
stays in the rejection log, so nothing is lost. It works offline: a branch that never reached
the server goes with nothing to re-read; one that grew from a revision the server holds leaves
that revision without its body on the device until the next pull reads it back (online, it is
re-read at once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from carecouch.errors import CouchNotFound
from carecouch.records import Registry

from ..errors import DeviceOffline, RecoveryUnavailable
from ..store.documents import Doc, LocalDatabase, body_of
from ..store.rejections import Rejection, Rejections, RejectionState
from ..store.replica import IncomingRevision, ReplicaIO
from .remote import RemoteDatabase
from .status import SyncStopped

# Fields only the bridge (or an admin) writes; a re-applied device edit keeps the server's
# values, or validation would refuse it again (docs/design.md, "Exclusive records: the lease
# protocol").
SERVER_OWNED_FIELDS = frozenset({"lease"})


def reread(remote: RemoteDatabase, local: LocalDatabase, doc_id: str) -> list[IncomingRevision]:
    """Every leaf of ``doc_id`` on the server, with history (``[]`` when it has none: a record
    the server never stored answers 404)."""
    try:
        found = remote.open_revs(f"re-read {doc_id}", doc_id)
    except CouchNotFound:
        return []
    return [IncomingRevision.from_doc(entry["ok"]) for entry in found
            if isinstance(entry.get("ok"), dict)]


def retry_with_reread(remote: RemoteDatabase, local: LocalDatabase, rejection: Rejection,
                      stamp: Callable[[Doc], Doc]) -> str:
    """The ``reread`` recovery; returns the new local revision (pushed by the next sync)."""
    if rejection.recovery != "reread":
        raise RecoveryUnavailable(
            f"{rejection.doc_id}: the server's reason ({rejection.reason}) names no automatic "
            "recovery; edit the record and save it again, or discard the refused revision")
    server = reread(remote, local, rejection.doc_id)
    if not server:
        raise RecoveryUnavailable(f"{rejection.doc_id}: the server holds no such record to "
                                  "re-read; discard the refused revision")
    with local.store.transaction():
        _replace_branch(local, rejection, server)
        current = local.get(rejection.doc_id)
        doc = stamp(reapply(current, rejection.doc))
        new_rev = local.put(doc)
        Rejections(local).resolve(rejection, RejectionState.RETRIED, new_rev)
    return new_rev


def discard(remote: RemoteDatabase | None, local: LocalDatabase, rejection: Rejection,
            *, state: str = RejectionState.DISCARDED, resolved_by: str | None = None) -> None:
    """Take the refused branch out of the local tree (its body stays in the rejection); with
    ``remote`` None (offline), without re-reading."""
    server: list[IncomingRevision] = []
    if remote is not None and local.server_base(rejection.doc_id, rejection.rev) is not None:
        try:
            server = reread(remote, local, rejection.doc_id)
        except (SyncStopped, DeviceOffline):
            pass  # as offline: the next pull reads the revision's body back
    with local.store.transaction():
        _replace_branch(local, rejection, server)
        Rejections(local).resolve(rejection, state, resolved_by)


def correction(local: LocalDatabase, rejection: Rejection, registry: Registry,
               changes: Mapping[str, Any], remove: Iterable[str] = ()) -> Doc:
    """The fields of a new record correcting a refused append-only one: its refused content
    with the clinician's ``changes``, amending it when the server holds it. The device stamps
    it (author, device, time) and derives what the rules derive (NEWS2) afresh."""
    spec = registry.types.get(str(rejection.doc.get("type")))
    if spec is None or spec.record_class != "append-only":
        raise RecoveryUnavailable(
            f"{rejection.doc_id} is not an append-only record: edit it and save again, or "
            "discard the refused revision")
    restamped = set(registry.envelope) - {"type", "subject"}
    derived = {f.name for f in spec.fields.values() if f.derive is not None}
    fields: Doc = {k: v for k, v in body_of(rejection.doc).items()
                   if k not in restamped | derived and not k.startswith("_")}
    fields.update(changes)
    for name in remove:
        fields.pop(name, None)
    fields.pop("amends", None)
    if local.server_base(rejection.doc_id, rejection.rev) is not None:
        fields["amends"] = rejection.doc_id
    return fields


def reapply(current: Mapping[str, Any], refused: Mapping[str, Any]) -> Doc:
    """The server's current record with the device's fields laid over it."""
    merged: Doc = {**body_of(dict(current)), **{
        key: value for key, value in body_of(dict(refused)).items()
        if key not in SERVER_OWNED_FIELDS and not key.startswith("_")}}
    merged["_id"] = current["_id"]
    merged["_rev"] = current["_rev"]
    return merged


def _replace_branch(local: LocalDatabase, rejection: Rejection,
                    server: list[IncomingRevision]) -> None:
    # One transaction (the caller's): the branch goes and the server's state arrives together,
    # so the revision the branch grew from is never left as a leaf without its body.
    local.remove_unsent_branch(rejection.doc_id, rejection.rev)
    ReplicaIO(local).store(server)


def ways_out(rejection: Rejection, registry: Registry) -> list[str]:
    """The commands that recover ``rejection``; discarding is always one."""
    spec = registry.types.get(str(rejection.doc.get("type")))
    ways = [f"carecouch-device retry {rejection.doc_id}"] if rejection.recovery else []
    if spec is not None and spec.record_class == "append-only":
        ways.append(f"carecouch-device correct {rejection.doc_id} --set FIELD=VALUE")
    return [*ways, f"carecouch-device discard {rejection.doc_id}"]
