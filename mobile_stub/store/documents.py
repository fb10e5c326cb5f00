"""One local database: documents as revision trees, local edits, and ``_local`` documents.

The store keeps each document's whole revision tree (every revision id with its parent) and
the encrypted body of each leaf. That is what lets a local edit carry a correct
``_revisions`` history to the server, and lets a conflict made offline be seen offline.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from carecouch.revs import Leaf, new_rev, revisions_object, winning_leaf
from carecouch.revs import conflicts as losing_leaves

from ..errors import DocumentNotFound, LocalConflict
from .access import StoreAccess
from .schema import NOW_SQL

Doc = dict[str, Any]

# Stored body = the document without its metadata; _attachments stay (with inline data).
_META_FIELDS = frozenset({"_id", "_rev", "_deleted", "_revisions", "_conflicts",
                          "_deleted_conflicts", "_revs_info", "_local_seq"})
SQL_VARS = 500  # ids per IN (...) list; far below SQLite's limit, keeps statements cacheable


# One encoder, not one per call (json.dumps with options builds a new encoder every time).
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def body_of(doc: Mapping[str, Any]) -> Doc:
    return {k: v for k, v in doc.items() if k not in _META_FIELDS}


def carries_data(body: Mapping[str, Any]) -> bool:
    """Whether a stored body holds attachment data (not only stubs): what an attachment
    retention may take away (revs.atts)."""
    atts = body.get("_attachments")
    return isinstance(atts, dict) and any(isinstance(a, dict) and "data" in a
                                          for a in atts.values())


def chunks(items: list[str], size: int = SQL_VARS) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class RecordState(StrEnum):
    """Where an edit made on this device stands (read-your-writes, honestly)."""

    SAVED = "saved"          # on the device only
    SENT = "sent"            # pushed; the server has not yet been heard to hold it
    CONFIRMED = "confirmed"  # the server holds this revision
    REFUSED = "refused"      # the server refused it: see the rejection log


# One place that says how a state is read from a revision row ``r``.
_STATE_SQL = (
    "CASE WHEN EXISTS (SELECT 1 FROM rejections j WHERE j.db = r.db AND j.doc_id = r.doc_id "
    "AND j.rev = r.rev AND j.state = 'open') THEN 'refused' "
    "WHEN r.on_server = 1 THEN 'confirmed' WHEN r.sent = 1 THEN 'sent' ELSE 'saved' END")


@dataclass(frozen=True)
class Edit:
    """A local edit as :meth:`LocalDatabase.plan_edit` works it out."""

    doc_id: str
    parent: str | None   # the leaf it grows from (None: a new document)
    rev: str
    deleted: bool
    body: Doc


class LocalDatabase:
    """Documents of one replicated database inside a :class:`DeviceStore`."""

    def __init__(self, store: StoreAccess, db_id: int, name: str, server_url: str,
                 filter_json: str | None) -> None:
        self.store = store
        self.id = db_id
        self.name = name
        self.server_url = server_url
        self.filter_json = filter_json

    @property
    def conn(self) -> sqlite3.Connection:
        return self.store.conn

    # -- bodies -----------------------------------------------------------------------------

    def seal_body(self, doc_id: str, rev: str, body: Doc) -> bytes:
        return self.store.sealer.seal(_encode(body).encode("utf-8"), self.name, doc_id, rev)

    def open_body(self, doc_id: str, rev: str, sealed: bytes) -> Doc:
        result: Doc = json.loads(self.store.sealer.open(sealed, self.name, doc_id, rev))
        return result

    # -- reading ----------------------------------------------------------------------------

    def leaves(self, doc_id: str) -> list[Leaf]:
        rows = self.conn.execute(
            "SELECT rev, deleted FROM revs WHERE db = ? AND doc_id = ? AND leaf = 1",
            (self.id, doc_id))
        return [Leaf(rev, bool(deleted)) for rev, deleted in rows]

    def parents(self, doc_id: str) -> dict[str, str | None]:
        rows = self.conn.execute("SELECT rev, parent FROM revs WHERE db = ? AND doc_id = ?",
                                 (self.id, doc_id))
        return {rev: parent for rev, parent in rows}

    def history(self, doc_id: str, rev: str, parents: dict[str, str | None] | None = None
                ) -> list[str]:
        """``rev`` and its known ancestors, newest first."""
        parents = self.parents(doc_id) if parents is None else parents
        path: list[str] = []
        current: str | None = rev
        while current is not None and current in parents and len(path) < 100_000:
            path.append(current)
            current = parents[current]
        return path

    def get(self, doc_id: str, rev: str | None = None, *, conflicts: bool = False,
            revs: bool = False) -> Doc:
        """The winning revision (or ``rev``), like ``GET /db/doc`` (deleted docs too)."""
        leaves = self.leaves(doc_id)
        if not leaves:
            raise DocumentNotFound(f"no document {doc_id!r} in {self.name}")
        chosen = winning_leaf(leaves) if rev is None else next(
            (leaf for leaf in leaves if leaf.rev == rev), None)
        if chosen is None:
            raise DocumentNotFound(f"{doc_id!r} has no leaf revision {rev!r} in {self.name}")
        row = self.conn.execute(
            "SELECT body FROM revs WHERE db = ? AND doc_id = ? AND rev = ?",
            (self.id, doc_id, chosen.rev)).fetchone()
        doc: Doc = {"_id": doc_id, "_rev": chosen.rev}
        if row is not None and row[0] is not None:
            doc.update(self.open_body(doc_id, chosen.rev, row[0]))
        if chosen.deleted:
            doc["_deleted"] = True
        if conflicts:
            lost = losing_leaves(leaves)
            if lost:
                doc["_conflicts"] = lost
        if revs:
            doc["_revisions"] = revisions_object(self.history(doc_id, chosen.rev))
        return doc

    def doc_ids(self, *, include_deleted: bool = False) -> list[str]:
        sql = "SELECT doc_id FROM docs WHERE db = ?" + ("" if include_deleted
                                                         else " AND deleted = 0")
        return [row[0] for row in self.conn.execute(sql + " ORDER BY doc_id", (self.id,))]

    def conflicted_ids(self) -> list[str]:
        return [row[0] for row in self.conn.execute(
            "SELECT doc_id FROM docs WHERE db = ? AND conflicted = 1 ORDER BY doc_id",
            (self.id,))]

    def pending_revs(self) -> list[tuple[str, str]]:
        """Local edits the server does not hold yet (refused ones are listed apart)."""
        return [(doc_id, rev) for doc_id, rev in self.conn.execute(
            "SELECT r.doc_id, r.rev FROM revs r WHERE r.db = ? AND r.leaf = 1 "
            "AND r.on_server = 0 AND NOT EXISTS (SELECT 1 FROM rejections j WHERE "
            "j.db = r.db AND j.doc_id = r.doc_id AND j.rev = r.rev AND j.state = 'open') "
            "ORDER BY r.doc_id", (self.id,))]

    def server_base(self, doc_id: str, rev: str) -> str | None:
        """The nearest ancestor of ``rev`` the server is known to hold (None: the server
        never held any revision of this branch)."""
        rows = self.conn.execute("SELECT rev, parent, on_server FROM revs WHERE db = ? AND "
                                 "doc_id = ?", (self.id, doc_id)).fetchall()
        parents = {r: p for r, p, _ in rows}
        held = {r for r, _, on_server in rows if on_server}
        current = parents.get(rev)
        while current is not None:
            if current in held:
                return str(current)
            current = parents.get(current)
        return None

    def bodiless_leaves(self) -> list[tuple[str, str]]:
        """Live leaves the server holds whose body the device does not have: the revision a
        discarded branch grew from, offline (the next pull reads it back)."""
        return [(str(d), str(r)) for d, r in self.conn.execute(
            "SELECT doc_id, rev FROM revs WHERE db = ? AND leaf = 1 AND deleted = 0 AND "
            "on_server = 1 AND body IS NULL", (self.id,))]

    def counts(self) -> dict[str, int]:
        row = self.conn.execute(
            "SELECT count(*), coalesce(sum(deleted), 0), coalesce(sum(conflicted), 0) "
            "FROM docs WHERE db = ?", (self.id,)).fetchone()
        states = dict.fromkeys(RecordState, 0)
        for state, count in self.conn.execute(
                f"SELECT {_STATE_SQL}, count(*) FROM revs r WHERE r.db = ? AND r.local = 1 "
                "AND r.leaf = 1 GROUP BY 1", (self.id,)):
            states[RecordState(state)] = int(count)
        return {"docs": int(row[0]) - int(row[1]), "deleted": int(row[1]),
                "conflicted": int(row[2]), "pending": len(self.pending_revs()),
                **{str(state): count for state, count in states.items()}}

    def state(self, doc_id: str, rev: str) -> RecordState | None:
        """Where this device's edit ``rev`` stands; None for a revision it did not make."""
        row = self.conn.execute(
            f"SELECT {_STATE_SQL} FROM revs r WHERE r.db = ? AND r.doc_id = ? AND r.rev = ? "
            "AND r.local = 1", (self.id, doc_id, rev)).fetchone()
        return None if row is None else RecordState(row[0])

    def keep_attachment(self, doc_id: str, rev: str, name: str, att: Mapping[str, Any]
                        ) -> None:
        """Put an attachment's data, fetched again from the server, back into leaf ``rev``;
        the retention counts from now."""
        with self.store.transaction():
            row = self.conn.execute("SELECT body FROM revs WHERE db = ? AND doc_id = ? AND "
                                    "rev = ? AND leaf = 1 AND body IS NOT NULL",
                                    (self.id, doc_id, rev)).fetchone()
            if row is None:
                return  # edited or removed meanwhile: nothing to put it back into
            body = self.open_body(doc_id, rev, row[0])
            atts = dict(body.get("_attachments") or {})
            atts[name] = {k: v for k, v in att.items() if k != "stub"}
            body["_attachments"] = atts
            self.conn.execute(
                f"UPDATE revs SET body = ?, atts = 1, confirmed_at = {NOW_SQL} WHERE db = ? "
                "AND doc_id = ? AND rev = ?",
                (self.seal_body(doc_id, rev, body), self.id, doc_id, rev))

    def mark_sent(self, revs: Iterable[tuple[str, str]]) -> None:
        self.conn.executemany("UPDATE revs SET sent = 1 WHERE db = ? AND doc_id = ? AND rev = ?",
                              [(self.id, doc_id, rev) for doc_id, rev in revs])

    # -- local edits ------------------------------------------------------------------------

    def plan_edit(self, doc: Mapping[str, Any]) -> Edit:
        """The revision saving ``doc`` would make, without saving it (the record rules are
        checked on it first); raises :class:`LocalConflict` as :meth:`put` would.

        Like CouchDB: editing needs the current leaf; a new document, or one whose every leaf
        is deleted, needs no ``_rev`` (it then continues the deleted branch).
        """
        doc_id = doc.get("_id")
        if not isinstance(doc_id, str) or not doc_id or doc_id.startswith("_local/"):
            raise ValueError("a document needs a string _id (not _local/)")
        base = doc.get("_rev")
        deleted = bool(doc.get("_deleted"))
        body = body_of(doc)
        leaves = self.leaves(doc_id)
        if base is not None:
            if base not in {leaf.rev for leaf in leaves}:
                raise LocalConflict(f"{doc_id}: {base} is not a current revision; "
                                    "read the document again and edit its latest revision")
            parent: str | None = str(base)
        elif any(not leaf.deleted for leaf in leaves):
            raise LocalConflict(f"{doc_id} exists: edit it by giving its _rev")
        else:
            parent = winning_leaf(leaves).rev if leaves else None
        return Edit(doc_id, parent, new_rev(parent, body, deleted), deleted, body)

    def put(self, doc: Doc) -> str:
        """Write a new revision on the device (``_rev`` = the leaf it edits); returns it."""
        with self.store.transaction():
            edit = self.plan_edit(doc)
            doc_id, rev, parent = edit.doc_id, edit.rev, edit.parent
            exists = self.conn.execute("SELECT 1 FROM revs WHERE db = ? AND doc_id = ? AND "
                                       "rev = ?", (self.id, doc_id, rev)).fetchone()
            if exists:
                return rev  # the identical edit of the same revision: nothing new
            self.conn.execute(
                "INSERT INTO revs (db, doc_id, rev, parent, leaf, deleted, local, on_server, "
                "body, atts) VALUES (?, ?, ?, ?, 1, ?, 1, 0, ?, ?)",
                (self.id, doc_id, rev, parent, int(edit.deleted),
                 self.seal_body(doc_id, rev, edit.body), int(carries_data(edit.body))))
            if parent is not None:
                # The parent stops being a leaf; like compaction, only leaves keep bodies.
                self.conn.execute("UPDATE revs SET leaf = 0, body = NULL, atts = 0 WHERE "
                                  "db = ? AND doc_id = ? AND rev = ?", (self.id, doc_id, parent))
            self.refresh_docs([doc_id])
        return rev

    def put_replacing_unsent(self, doc: Doc) -> str:
        """Save ``doc`` in place of the revision it edits when that revision never reached
        the server (not known to be on it, not refused): as a child of that revision's
        parent, the replaced revision taken out of the tree.

        For exclusive records: the server judges an edit against the revision it was made
        on and refuses one whose parent it does not hold (``exclusive.reread``), so a second
        offline edit must not stack on a first that is still on the device alone. Should the
        first have reached the server after all (its answer lost), the two are siblings
        there: a conflict for supervisory review, nothing lost.
        """
        base = doc.get("_rev")
        doc_id = doc.get("_id")
        if not isinstance(base, str) or not isinstance(doc_id, str):
            return self.put(doc)
        with self.store.transaction():
            row = self.conn.execute(
                "SELECT parent FROM revs r WHERE db = ? AND doc_id = ? AND rev = ? AND leaf = 1 "
                "AND on_server = 0 AND parent IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
                "rejections j WHERE j.db = r.db AND j.doc_id = r.doc_id AND j.rev = r.rev)",
                (self.id, doc_id, base)).fetchone()
            if row is None:
                return self.put(doc)
            self.conn.execute("DELETE FROM revs WHERE db = ? AND doc_id = ? AND rev = ?",
                              (self.id, doc_id, base))
            self.conn.execute("UPDATE revs SET leaf = 1 WHERE db = ? AND doc_id = ? AND "
                              "rev = ?", (self.id, doc_id, row[0]))
            return self.put({**doc, "_rev": row[0]})

    def remove_unsent_branch(self, doc_id: str, rev: str) -> list[str]:
        """Delete ``rev`` and the ancestors only it grew from that the server never held.

        For a refused local edit being retried or discarded: no one else has those revisions,
        and the refused body is kept in the rejections table. The revision the branch grew
        from becomes a leaf again; its body returns with the next read from the server, so
        callers run this in the same transaction as that read's :meth:`ReplicaIO.store`.
        """
        removed: list[str] = []
        with self.store.transaction():
            rows = self.conn.execute(
                "SELECT rev, parent, on_server FROM revs WHERE db = ? AND doc_id = ?",
                (self.id, doc_id)).fetchall()
            parents = {r: p for r, p, _ in rows}
            held = {r for r, _, on_server in rows if on_server}
            children: dict[str, int] = {}
            for parent in parents.values():
                if parent is not None:
                    children[parent] = children.get(parent, 0) + 1
            current: str | None = rev
            while (current is not None and current in parents and current not in held
                   and children.get(current, 0) == 0):
                self.conn.execute("DELETE FROM revs WHERE db = ? AND doc_id = ? AND rev = ?",
                                  (self.id, doc_id, current))
                removed.append(current)
                parent = parents[current]
                if parent is not None:
                    children[parent] -= 1
                current = parent
            if removed and current is not None and children.get(current, 0) == 0:
                self.conn.execute("UPDATE revs SET leaf = 1 WHERE db = ? AND doc_id = ? AND "
                                  "rev = ?", (self.id, doc_id, current))
            self.refresh_docs([doc_id])
        return removed

    # -- bookkeeping ------------------------------------------------------------------------

    def next_seq(self) -> int:
        return self.reserve_seqs(1)

    def reserve_seqs(self, count: int) -> int:
        """Advance the local update sequence by ``count``; returns the first one reserved."""
        row = self.conn.execute("UPDATE dbs SET update_seq = update_seq + ? WHERE id = ? "
                                "RETURNING update_seq", (count, self.id)).fetchone()
        return int(row[0]) - count + 1

    @property
    def update_seq(self) -> int:
        row = self.conn.execute("SELECT update_seq FROM dbs WHERE id = ?", (self.id,)).fetchone()
        return int(row[0])

    def refresh_docs(self, doc_ids: Iterable[str]) -> None:
        """Recompute winner/conflict state of ``doc_ids`` and move them up the changes feed."""
        for doc_id in doc_ids:
            leaves = self.leaves(doc_id)
            if not leaves:
                self.conn.execute("DELETE FROM docs WHERE db = ? AND doc_id = ?",
                                  (self.id, doc_id))
                continue
            self.write_doc_row(doc_id, leaves, self.next_seq())

    def write_doc_row(self, doc_id: str, leaves: list[Leaf], seq: int) -> None:
        self.write_doc_rows([(doc_id, leaves, seq)])

    def write_doc_rows(self, rows: Iterable[tuple[str, list[Leaf], int]]) -> None:
        """Index rows (winner, deleted, conflicted) at their new place in the changes feed."""
        values = []
        for doc_id, leaves, seq in rows:
            if len(leaves) == 1:  # the common case, without sorting
                winner, conflicted = leaves[0], False
            else:
                winner = winning_leaf(leaves)
                conflicted = bool(losing_leaves(leaves))
            values.append((self.id, doc_id, seq, winner.rev, int(winner.deleted),
                           int(conflicted)))
        self.conn.executemany(
            "INSERT OR REPLACE INTO docs (db, doc_id, seq, winner, deleted, conflicted) "
            "VALUES (?, ?, ?, ?, ?, ?)", values)

    # -- _local documents (checkpoints) -----------------------------------------------------

    def get_local(self, local_id: str) -> Doc | None:
        row = self.conn.execute("SELECT body FROM local_docs WHERE db = ? AND id = ?",
                                (self.id, local_id)).fetchone()
        if row is None:
            return None
        result: Doc = json.loads(row[0])
        return result

    def put_local(self, local_id: str, body: Doc) -> None:
        self.conn.execute("INSERT OR REPLACE INTO local_docs (db, id, body) VALUES (?, ?, ?)",
                          (self.id, local_id, json.dumps(body, separators=(",", ":"))))
