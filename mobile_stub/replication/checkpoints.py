"""Replication checkpoints: the device decides from its own copy, never from the server's.

A checkpoint says "every change of the source up to ``source_last_seq`` is on the target".
It is kept in ``_local/<replication id>`` in CouchDB's format on both sides, as CouchDB's
replicator keeps it. CouchDB's replicator resumes from the *source's* copy when both copies
carry the same ``session_id`` (``compare_replication_logs``); on a caseload database that is
unsafe, because any member may read, list (``_local_docs``) and rewrite every ``_local``
document: raising ``source_last_seq`` in a device's pull checkpoint made its next sync report
success while new observations never arrived, and a forged history in its push checkpoint
would make it skip local changes.

So the device trusts only what it recorded itself:

- the start point is always the device's own copy (``source_last_seq`` of the checkpoint in
  the device store), for pull and push alike;
- the server's copy only decides whether that start point may be used: it must be exactly the
  copy the device last wrote there (the device keeps ``server_copy``: the session and
  sequence of its last confirmed server write). A server copy that is missing (deleted, or a
  recreated database) or differs (someone else wrote it) is treated as absent: the
  replication starts again from the beginning, which is slower but never wrong (revisions
  already present are skipped), and the sync report says so (:class:`CheckpointTrust`).

Nothing another member writes can therefore move a device's start point forward. Sequences
stay opaque: stored and sent back exactly as the source gave them, compared only for
equality with what the device wrote (CouchDB 3's are strings, PouchDB Server's integers).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from enum import StrEnum
from typing import Any

from ..store.documents import Doc, LocalDatabase
from .ids import REPLICATION_ID_VERSION
from .remote import RemoteDatabase
from .status import ReplicationStats

MAX_HISTORY = 50  # CouchDB keeps the last 50 sessions
# Kept in the device's copy only: the [session_id, source_last_seq] it last wrote to the server
# and had confirmed, and the one it is writing there now (a write whose answer was lost may have
# landed: the network often dies in the middle of one).
SERVER_COPY = "carecouch_server_copy"
SERVER_PENDING = "carecouch_server_pending"


class CheckpointTrust(StrEnum):
    NONE = "none"                      # the device has no checkpoint: from the beginning
    AGREED = "agreed"                  # the server holds the copy the device wrote: resume
    SERVER_MISSING = "server_missing"  # the server's copy is gone: from the beginning
    SERVER_ALTERED = "server_altered"  # the server's copy is not the device's: from the beginning

    @property
    def restarted(self) -> bool:
        """The device had a checkpoint but could not use it."""
        return self in (CheckpointTrust.SERVER_MISSING, CheckpointTrust.SERVER_ALTERED)


class LocalSide:
    """The checkpoint in the device store: the copy the device trusts."""

    def __init__(self, db: LocalDatabase, rep_id: str) -> None:
        self.db = db
        self.rep_id = rep_id

    def read(self) -> Doc | None:
        return self.db.get_local(self.rep_id)

    def write(self, doc: Doc) -> None:
        self.db.put_local(self.rep_id, doc)


class RemoteSide:
    """The checkpoint on the server; remembers its ``_rev`` between writes."""

    def __init__(self, remote: RemoteDatabase, rep_id: str) -> None:
        self.remote = remote
        self.rep_id = rep_id
        self._rev: str | None = None

    def read(self) -> Doc | None:
        doc = self.remote.get_local("read checkpoint", self.rep_id)
        self._rev = None if doc is None else str(doc.get("_rev"))
        return doc

    def write(self, doc: Doc) -> None:
        body = {k: v for k, v in doc.items() if k not in ("_id", "_rev")}
        if self._rev:
            body["_rev"] = self._rev
        self._rev = self.remote.put_local("write checkpoint", self.rep_id, body)


def httpd_date() -> str:
    """CouchDB writes checkpoint times as RFC 1123 dates."""
    return formatdate(time.time(), usegmt=True)


def judge(device_copy: Doc | None, server_copy: Doc | None) -> CheckpointTrust:
    """May the device resume from ``device_copy``, given what the server holds?"""
    if not device_copy:
        return CheckpointTrust.NONE
    if not server_copy:
        return CheckpointTrust.SERVER_MISSING
    written = [value for value in (device_copy.get(SERVER_COPY), device_copy.get(SERVER_PENDING))
               if isinstance(value, list) and len(value) == 2]
    if not written:
        # A checkpoint written before the device kept SERVER_COPY: the server copy was the
        # same document.
        written = [[device_copy.get("session_id"), device_copy.get("source_last_seq")]]
    held = [server_copy.get("session_id"), server_copy.get("source_last_seq")]
    if any(_same(held, value) for value in written):
        return CheckpointTrust.AGREED
    return CheckpointTrust.SERVER_ALTERED


def _same(a: list[Any], b: list[Any]) -> bool:
    # Exact JSON equality: 1 and "1" are different sequences, and True is not 1.
    return all(type(x) is type(y) and x == y for x, y in zip(a, b, strict=True))


@dataclass
class Checkpointer:
    """Reads the start point of one replication and records its progress on both sides."""

    device: LocalSide
    server: RemoteSide
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    start_time: str = field(default_factory=httpd_date)
    start_seq: Any = 0
    trust: CheckpointTrust = CheckpointTrust.NONE
    _history: list[Doc] = field(default_factory=list)
    _last_written: Any = None
    _confirmed: Any = None   # [session_id, seq] the server holds, as far as the device knows

    def start(self) -> Any:
        """The source sequence to resume from (``0``: from the beginning)."""
        mine, theirs = self.device.read(), self.server.read()
        self.trust = judge(mine, theirs)
        self._history = list((mine or {}).get("history") or [])[:MAX_HISTORY]
        if self.trust is CheckpointTrust.AGREED:
            assert mine is not None and theirs is not None
            self.start_seq = mine.get("source_last_seq", 0)
            self._last_written = self.start_seq
            self._confirmed = [theirs.get("session_id"), theirs.get("source_last_seq")]
        else:
            self.start_seq, self._last_written, self._confirmed = 0, None, None
        return self.start_seq

    def record(self, seq: Any, stats: ReplicationStats) -> None:
        """Record that every change up to ``seq`` is on the target: in the device's own copy
        (naming the server write about to happen), on the server, then in the device's copy
        again with the server write confirmed. However the server write ends (refused, lost
        with its answer, or landed), the device's copy names what the server holds."""
        if seq == self._last_written:
            return
        entry = {"session_id": self.session_id, "start_time": self.start_time,
                 "end_time": httpd_date(), "start_last_seq": self.start_seq,
                 "end_last_seq": seq, "recorded_seq": seq, **stats.to_json()}
        doc = {"session_id": self.session_id, "source_last_seq": seq,
               "replication_id_version": REPLICATION_ID_VERSION,
               "history": [entry, *self._history][:MAX_HISTORY]}
        pending = [self.session_id, seq]
        self.device.write({**doc, SERVER_COPY: self._confirmed, SERVER_PENDING: pending})
        self.server.write(doc)
        self._confirmed = pending
        self.device.write({**doc, SERVER_COPY: pending})
        self._last_written = seq
