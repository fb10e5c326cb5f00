"""Recovering a refused write, as the server's reason code says (docs/device.md).

- ``<kind>.reread`` (e.g. ``exclusive.reread``: the server could not see the record's previous
  state, so it cannot check the edit): re-read the record from the server, re-apply the
  device's edit on top of the server's current revision, and push again.
- anything else needs a person: change the record and save again, or discard the refused
  revision. Discarding keeps the refused body in the rejections table; nothing is lost.

Both re-read the document first, so the local tree matches the server's before the refused
branch (which only this device ever held) is taken out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..errors import RecoveryUnavailable
from ..store.documents import Doc, LocalDatabase, body_of
from ..store.rejections import DISCARDED, RETRIED, Rejection, Rejections
from ..store.replica import IncomingRevision, ReplicaIO
from .remote import RemoteDatabase

# Fields only the bridge (or an admin) writes; a re-applied device edit keeps the server's
# values, or validation would refuse it again (design.md, "Exclusive records").
SERVER_OWNED_FIELDS = frozenset({"lease"})


def reread(remote: RemoteDatabase, local: LocalDatabase, doc_id: str) -> list[IncomingRevision]:
    """Every leaf of ``doc_id`` on the server, with history (``[]`` when it has none)."""
    found = remote.open_revs(f"re-read {doc_id}", doc_id)
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
        Rejections(local).resolve(rejection, RETRIED, new_rev)
    return new_rev


def discard(remote: RemoteDatabase, local: LocalDatabase, rejection: Rejection) -> None:
    """Take the refused branch out of the local tree (its body stays in the rejection)."""
    server = reread(remote, local, rejection.doc_id)
    with local.store.transaction():
        _replace_branch(local, rejection, server)
        Rejections(local).resolve(rejection, DISCARDED)


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
