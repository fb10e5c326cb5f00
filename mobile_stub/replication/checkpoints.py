"""Replication checkpoints, kept in ``_local/<replication id>`` on BOTH sides, CouchDB's way.

A checkpoint says "every change of the source up to ``source_last_seq`` is on the target".
It is written to the source and to the target, each time with the same ``session_id``; on the
next run the two are compared (CouchDB's ``compare_replication_logs``): the same session on
both sides means the checkpoint is trustworthy; otherwise the newest session both histories
share gives the sequence to resume from; none shared means start again from the beginning
(safe, only slower: revisions already present are skipped, never written twice).

Sequences are opaque: stored and sent back exactly as the source gave them, never parsed or
compared (CouchDB 3's are strings, PouchDB Server's integers).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Protocol

from ..store.documents import Doc, LocalDatabase
from .ids import REPLICATION_ID_VERSION
from .remote import RemoteDatabase
from .status import ReplicationStats

MAX_HISTORY = 50  # CouchDB keeps the last 50 sessions


class CheckpointSide(Protocol):
    def read(self) -> Doc | None: ...
    def write(self, doc: Doc) -> None: ...


class LocalSide:
    """The checkpoint in the device store."""

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


@dataclass
class Checkpointer:
    """Reads the start point of a replication and records its progress on both sides."""

    source: CheckpointSide
    target: CheckpointSide
    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    start_time: str = field(default_factory=httpd_date)
    start_seq: Any = 0
    _history: list[Doc] = field(default_factory=list)
    _last_written: Any = None

    def start(self) -> Any:
        """The source sequence to resume from (``0``: from the beginning)."""
        source_doc, target_doc = self.source.read(), self.target.read()
        self.start_seq, self._history = compare_replication_logs(source_doc, target_doc)
        self._last_written = self.start_seq if source_doc and target_doc else None
        return self.start_seq

    def record(self, seq: Any, stats: ReplicationStats) -> None:
        """Record that every change up to ``seq`` is on the target (target first: a
        checkpoint on the source alone must never claim more than the target holds)."""
        if seq == self._last_written:
            return
        entry = {"session_id": self.session_id, "start_time": self.start_time,
                 "end_time": httpd_date(), "start_last_seq": self.start_seq,
                 "end_last_seq": seq, "recorded_seq": seq, **stats.to_json()}
        doc = {"session_id": self.session_id, "source_last_seq": seq,
               "replication_id_version": REPLICATION_ID_VERSION,
               "history": [entry, *self._history][:MAX_HISTORY]}
        self.target.write(doc)
        self.source.write(doc)
        self._last_written = seq


def compare_replication_logs(source: Doc | None, target: Doc | None
                             ) -> tuple[Any, list[Doc]]:
    """CouchDB's rule: ``(sequence to start from, history to extend)``."""
    if not source or not target:
        return 0, []
    if source.get("session_id") == target.get("session_id"):
        return source.get("source_last_seq", 0), list(source.get("history") or [])
    return _compare_histories(list(source.get("history") or []),
                              list(target.get("history") or []))


def _compare_histories(source: list[Doc], target: list[Doc]) -> tuple[Any, list[Doc]]:
    # Walk both histories newest first, one step at a time, until one side's newest session
    # appears in the other's history: that session's recorded_seq is on both sides.
    while source and target:
        source_head, target_head = source[0], target[0]
        if _has_session(source_head.get("session_id"), target):
            return source_head.get("recorded_seq", 0), source[1:]
        if _has_session(target_head.get("session_id"), source[1:]):
            return target_head.get("recorded_seq", 0), target[1:]
        source, target = source[1:], target[1:]
    return 0, []


def _has_session(session_id: Any, history: list[Doc]) -> bool:
    return any(entry.get("session_id") == session_id for entry in history)
