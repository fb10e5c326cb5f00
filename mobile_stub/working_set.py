"""The device keeps its clinical working set and nothing more (docs/device.md, "What the
device keeps").

After every sync, online or not, the device asks its policy what it should hold of each
database (:class:`Holding`) and removes the rest from its store:

- records the ``carecouch/device`` filter no longer passes: the time window slid past an
  append-only record, a patient was unpinned, the policy narrowed the record types. The
  filter is the server's own function (run on the device: :meth:`carecouch.rules.Rules.
  passes`), with the query parameters the latest snapshot gives, its window slid to now;
- every record of a caseload that left the snapshot, and then the database itself;
- the data of attachments (wound photos) the server has held for longer than the policy's
  attachment retention: the record stays, with attachment stubs; ``carecouch-device
  attachment`` fetches the data again online.

Removal is local only: rows leave the store, no deletion is written, so nothing replicates
and the server is not touched. It never takes a record whose local changes the server has not
confirmed (a saved, sent or refused edit, an open rejection): such a record is held back and
counted, and removed by a later pass once the server holds it. It is secure: the store runs
with ``secure_delete`` (freed bytes are zeroed) and after a removal the write-ahead log, which
holds earlier page images, is checkpointed and truncated.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from carecouch.clock import format_utc, utc_now
from carecouch.ddocs import DEVICE_FILTER, DEVICE_FILTER_NAME
from carecouch.rules import Rules, RulesError

from .store.documents import Doc, LocalDatabase, chunks

if TYPE_CHECKING:  # the replication package imports the policy, which imports this
    from .replication.filters import ReplicationFilter


class Removal(StrEnum):
    """Why a record (or its attachment data) left the device."""

    WINDOW = "window"
    UNPINNED = "unpinned"
    TYPE = "type"
    CASELOAD = "caseload"
    ATTACHMENTS = "attachments"  # attachment bodies removed (their records stay)


# Why records left (Removal.ATTACHMENTS is of their data), in the order they are reported.
REASONS = (Removal.WINDOW, Removal.UNPINNED, Removal.TYPE, Removal.CASELOAD)
REASON_TEXT: dict[str, str] = {Removal.WINDOW: "outside the time window",
                               Removal.UNPINNED: "patient no longer pinned",
                               Removal.TYPE: "record type no longer held",
                               Removal.CASELOAD: "caseload no longer granted",
                               Removal.ATTACHMENTS: "attachment data past its retention"}
REMOVED_META = "working_set_removed"  # per database: totals, and the last removal
BATCH = 1000  # documents per filter call


@dataclass(frozen=True)
class Holding:
    """What the device should hold of one database now."""

    granted: bool = True
    # The carecouch/device filter's query parameters now; None: no filter the device can
    # evaluate (a development store with its own filter), so no record is removed by it.
    query: Mapping[str, str] | None = None
    attachment_retention: int | None = None  # seconds after the server holds the data

    @classmethod
    def bound(cls, replication_filter: ReplicationFilter | None) -> Holding:
        """What a store not enrolled with a bridge holds: what its own filter passes."""
        if (replication_filter is not None and replication_filter.kind == "design"
                and replication_filter.name == DEVICE_FILTER):
            return cls(query=dict(replication_filter.query_params))
        return cls()


def slid_window(query: Mapping[str, str], window_seconds: int | None, now: datetime
                ) -> dict[str, str]:
    """``query`` with its ``not_before`` moved up to ``now`` minus the window, on the hour
    (so the full pass that a new value needs runs at most hourly), never earlier than the
    bridge's own value."""
    result = dict(query)
    if window_seconds is None or "not_before" not in result:
        return result
    since = (now - timedelta(seconds=window_seconds)).replace(minute=0, second=0,
                                                             microsecond=0)
    result["not_before"] = max(result["not_before"], format_utc(since))
    return result


@dataclass
class Removed:
    """What one pass removed from one database."""

    counts: dict[str, int] = field(default_factory=dict)  # reason -> records (attachments)
    held_back: int = 0      # outside the working set, kept: changes the server lacks
    released: bool = False  # the database itself left the store (caseload not granted)
    log_truncated: bool = True  # the write-ahead log was emptied after the removal

    @property
    def total(self) -> int:
        return sum(v for k, v in self.counts.items() if k != Removal.ATTACHMENTS)

    def to_json(self) -> dict[str, Any]:
        return {"records": self.total, **{k: self.counts.get(k, 0) for k in (*REASONS,
                                                                           Removal.ATTACHMENTS)},
                "held_back": self.held_back, "released": self.released}


class Minimiser:
    """One pass over one database of the store (:func:`minimise`)."""

    def __init__(self, local: LocalDatabase, rules: Rules | None) -> None:
        self.local = local
        self.conn = local.conn
        self.rules = rules
        self._state_key = f"working_set:{local.name}"
        self._held_ids: list[str] = []

    def run(self, holding: Holding, now: datetime,
            pulled_with: Mapping[str, str] | None = None) -> Removed:
        removed = Removed()
        state = self._state()
        if not holding.granted:
            self._remove(self._all_ids(), lambda _doc_id: Removal.CASELOAD, removed)
            removed.released = removed.held_back == 0
        elif holding.query is not None and self.rules is not None:
            self._by_filter(self.rules, dict(holding.query), state, removed,
                            trust_pulled=pulled_with is not None and
                            dict(pulled_with) == dict(holding.query))
        if holding.granted and holding.attachment_retention is not None:
            self._strip_attachments(now - timedelta(seconds=holding.attachment_retention),
                                    removed)
        if removed.counts:
            removed.log_truncated = _truncate_log(self.local)
        if removed.released:
            self._release()
        else:
            self.local.store.set_meta(self._state_key, json.dumps({
                "query": holding.query, "seq": self.local.update_seq,
                "held_back": self._held_ids}))
        return removed

    # -- records outside the filter ---------------------------------------------------------

    def _by_filter(self, rules: Rules, query: dict[str, str], state: Mapping[str, Any],
                   removed: Removed, *, trust_pulled: bool) -> None:
        """A full pass when the query changed; otherwise only what changed since the last
        pass, and what it held back. With ``trust_pulled`` (the pull runs through this very
        query), what arrived from the server passed it there: only local edits are judged."""
        if state.get("query") == query:
            ids = self._changed_since(int(state.get("seq", 0)), local_only=trust_pulled)
            ids = sorted(set(ids) | set(state.get("held_back", [])))
        else:
            ids = self._all_ids()
        before = state.get("query") or {}
        types = _listed(query.get("types"))
        pinned_before, pinned = _listed(before.get("subjects")) or [], \
            _listed(query.get("subjects")) or []

        def reason(doc: Doc) -> str:
            if types is not None and doc.get("type") not in types:
                return Removal.TYPE
            if doc.get("subject") in pinned_before and doc.get("subject") not in pinned:
                return Removal.UNPINNED
            return Removal.WINDOW

        failing: list[str] = []
        bodies: dict[str, Doc] = {}
        for part in chunks(ids, BATCH):
            leaves = self._live_leaves(part)
            docs = [doc for doc_leaves in leaves.values() for doc in doc_leaves]
            if not docs:
                continue
            try:
                verdicts = iter(rules.passes(DEVICE_FILTER_NAME, docs, query))
            except RulesError:
                return  # the server's design document has no such filter: remove nothing
            for doc_id, doc_leaves in leaves.items():
                passed = [next(verdicts) for _ in doc_leaves]
                if not any(passed):
                    failing.append(doc_id)
                    bodies[doc_id] = doc_leaves[0]
        self._remove(failing, lambda doc_id: reason(bodies[doc_id]), removed)

    def _remove(self, ids: list[str], reason_of: Callable[[str], str], removed: Removed
                ) -> None:
        """Take ``ids`` out of the store, in one transaction, except those the server has
        not confirmed (checked inside the transaction, so an edit made meanwhile wins)."""
        self._held_ids = []
        if not ids:
            return
        db = self.local.id
        with self.local.store.transaction():
            for part in chunks(ids):
                marks = ",".join("?" * len(part))
                held = {row[0] for row in self.conn.execute(
                    f"SELECT DISTINCT doc_id FROM revs WHERE db = ? AND doc_id IN ({marks}) "
                    "AND local = 1 AND on_server = 0 AND leaf = 1 UNION SELECT doc_id FROM "
                    f"rejections WHERE db = ? AND doc_id IN ({marks}) AND state = 'open'",
                    (db, *part, db, *part))}
                self._held_ids += sorted(held)
                gone = [doc_id for doc_id in part if doc_id not in held]
                for doc_id in gone:
                    why = reason_of(doc_id)
                    removed.counts[why] = removed.counts.get(why, 0) + 1
                rows = [(db, doc_id) for doc_id in gone]
                for table in ("revs", "docs", "rejections"):
                    self.conn.executemany(
                        f"DELETE FROM {table} WHERE db = ? AND doc_id = ?", rows)  # noqa: S608
        removed.held_back = len(self._held_ids)

    # -- attachment data past its retention -------------------------------------------------

    def _strip_attachments(self, cutoff: datetime, removed: Removed) -> None:
        """Replace the data of attachments the server has held since before ``cutoff`` by
        stubs (content type, digest, length, revpos: what CouchDB sends without data)."""
        with self.local.store.transaction():
            rows = self.conn.execute(
                "SELECT doc_id, rev, body FROM revs WHERE db = ? AND atts = 1 AND "
                "on_server = 1 AND leaf = 1 AND body IS NOT NULL AND confirmed_at <= ?",
                (self.local.id, format_utc(cutoff))).fetchall()
            for doc_id, rev, sealed in rows:
                body = self.local.open_body(doc_id, rev, sealed)
                stubbed, count = stub_attachments(body)
                update = (self.local.seal_body(doc_id, rev, stubbed) if count else sealed)
                self.conn.execute("UPDATE revs SET body = ?, atts = 0 WHERE db = ? AND "
                                  "doc_id = ? AND rev = ?", (update, self.local.id, doc_id, rev))
                if count:
                    removed.counts[Removal.ATTACHMENTS] = (
                        removed.counts.get(Removal.ATTACHMENTS, 0) + count)

    # -- the store --------------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        raw = self.local.store.get_meta(self._state_key)
        return dict(json.loads(raw)) if raw else {}

    def _all_ids(self) -> list[str]:
        return self.local.doc_ids(include_deleted=True)

    def _changed_since(self, seq: int, *, local_only: bool) -> list[str]:
        mine = (" AND EXISTS (SELECT 1 FROM revs r WHERE r.db = docs.db AND r.doc_id = "
                "docs.doc_id AND r.local = 1)") if local_only else ""
        return [row[0] for row in self.conn.execute(
            f"SELECT doc_id FROM docs WHERE db = ? AND seq > ?{mine}", (self.local.id, seq))]

    def _live_leaves(self, ids: list[str]) -> dict[str, list[Doc]]:
        """Each document's live leaves with bodies, as the filter sees them; a document with
        none (a deletion, or a leaf whose body the device does not hold) is not judged."""
        result: dict[str, list[Doc]] = {}
        marks = ",".join("?" * len(ids))
        for doc_id, rev, sealed in self.conn.execute(
                "SELECT doc_id, rev, body FROM revs WHERE db = ? AND leaf = 1 AND deleted = 0 "
                f"AND body IS NOT NULL AND doc_id IN ({marks}) ORDER BY doc_id, rev",
                (self.local.id, *ids)):
            doc = {**self.local.open_body(doc_id, rev, sealed), "_id": doc_id, "_rev": rev}
            result.setdefault(doc_id, []).append(doc)
        return result

    def _release(self) -> None:
        """The caseload left the snapshot and nothing of it is waiting for the server: the
        database leaves the store, with its checkpoints and what the device learned of it."""
        store, name = self.local.store, self.local.name
        with store.transaction():
            for table in ("revs", "docs", "rejections", "local_docs"):
                self.conn.execute(f"DELETE FROM {table} WHERE db = ?",  # noqa: S608
                                  (self.local.id,))
            self.conn.execute("DELETE FROM dbs WHERE id = ?", (self.local.id,))
            for key in (self._state_key, f"rules:{name}", f"last_sync:{name}",
                        f"checkpoint_restarts:{name}"):
                self.conn.execute("DELETE FROM meta WHERE key = ?", (key,))
        _truncate_log(self.local)


def stub_attachments(body: Mapping[str, Any]) -> tuple[Doc, int]:
    """``body`` with each attachment's data replaced by its stub; how many were replaced."""
    atts = body.get("_attachments")
    if not isinstance(atts, dict):
        return dict(body), 0
    stubs: dict[str, Any] = {}
    count = 0
    for name, att in atts.items():
        if isinstance(att, dict) and "data" in att:
            count += 1
            stub = {k: v for k, v in att.items() if k not in ("data", "follows")}
            stub.setdefault("length", _decoded_length(str(att["data"])))
            stubs[name] = {**stub, "stub": True}
        else:
            stubs[name] = att
    return {**body, "_attachments": stubs}, count


def _decoded_length(data: str) -> int:
    return len(data) * 3 // 4 - data[-2:].count("=")


def minimise(local: LocalDatabase, holding: Holding, rules: Rules | None, now: datetime,
             pulled_with: Mapping[str, str] | None = None) -> Removed:
    """Remove from ``local`` what ``holding`` no longer covers; record what went.
    ``pulled_with``: the device filter's query parameters the pull uses, if it does."""
    removed = Minimiser(local, rules).run(holding, now, pulled_with)
    if removed.counts or removed.released:
        _record(local, removed)
    return removed


def _record(local: LocalDatabase, removed: Removed) -> None:
    """Keep per database what was removed (counts only, in the clear) for ``status``."""
    raw = local.store.get_meta(REMOVED_META)
    book: dict[str, Any] = json.loads(raw) if raw else {}
    entry = book.setdefault(local.name, {"total": {}})
    for reason, count in removed.counts.items():
        entry["total"][reason] = entry["total"].get(reason, 0) + count
    entry["last"] = {"at": utc_now(), **removed.to_json()}
    entry["released"] = removed.released
    local.store.set_meta(REMOVED_META, json.dumps(book, sort_keys=True))


def removal_record(store: Any) -> dict[str, Any]:
    """What minimisation removed, per database (``status``)."""
    raw = store.get_meta(REMOVED_META)
    return dict(json.loads(raw)) if raw else {}


def _listed(value: str | None) -> list[str] | None:
    return [v for v in value.split(",") if v] if value else None


def _truncate_log(local: LocalDatabase, attempts: int = 20) -> bool:
    """Checkpoint the write-ahead log into the store and truncate it to nothing: its frames
    are earlier images of the pages just cleared. A reader in another process (``status``)
    can hold it for a moment, so a few tries; False if it stayed busy (the next pass tries
    again, and SQLite reuses the log from the start after any full checkpoint)."""
    for _ in range(attempts):
        busy = local.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if not busy:
            return True
        time.sleep(0.05)
    return False
