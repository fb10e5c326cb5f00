"""The store's side of replication: what the replicator asks of a local database, in bulk.

Every call handles a whole batch in a few SQL statements, because an initial pull writes tens
of thousands of revisions and must not cost a round trip through SQLite per document.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from carecouch.revs import Leaf, revisions_object, revisions_path

from .documents import Doc, LocalDatabase, body_of, carries_data, chunks
from .schema import NOW_SQL


@dataclass(frozen=True)
class IncomingRevision:
    """A revision read from the server, with its history (newest first, ``path[0] == rev``)."""

    doc_id: str
    rev: str
    path: tuple[str, ...]
    deleted: bool
    body: Doc
    sealed: bytes | None = None   # the body already encrypted for this store (see pull)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> IncomingRevision:
        """From a document as ``_bulk_get?revs=true`` (or a first revision) returns it."""
        rev = str(doc["_rev"])
        revisions = doc.get("_revisions")
        path = tuple(revisions_path(revisions)) if revisions else (rev,)
        if path[0] != rev:
            raise ValueError(f"{doc['_id']}: _revisions does not start at {rev}")
        return cls(str(doc["_id"]), rev, path, bool(doc.get("_deleted")), body_of(doc))


class _Row:
    __slots__ = ("parent", "leaf", "deleted", "bodiless", "on_server")

    def __init__(self, parent: str | None, leaf: bool, deleted: bool, bodiless: bool,
                 on_server: bool) -> None:
        self.parent = parent
        self.leaf = leaf
        self.deleted = deleted
        self.bodiless = bodiless
        self.on_server = on_server


class ReplicaIO:
    """Bulk reads and writes for the replicator on one :class:`LocalDatabase`."""

    def __init__(self, db: LocalDatabase) -> None:
        self.db = db

    # -- pull -------------------------------------------------------------------------------

    def missing(self, revs: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
        """The ``_revs_diff`` of the local side: which of ``revs`` the store lacks."""
        wanted = {doc_id: list(rs) for doc_id, rs in revs.items()}
        known = self._known_revs(list(wanted))
        result: dict[str, list[str]] = {}
        for doc_id, rs in wanted.items():
            have = known.get(doc_id, set())
            lacking = [rev for rev in rs if rev not in have]
            if lacking:
                result[doc_id] = lacking
        return result

    def store(self, incoming: list[IncomingRevision]) -> int:
        """Write pulled revisions with their histories; returns how many were new.

        A revision already present is never written again. Ancestors arrive as ids only (as
        CouchDB sends them) and become body-less inner nodes; a former leaf that gains a
        child loses its body, like a compacted CouchDB database.
        """
        if not incoming:
            return 0
        db, conn = self.db, self.db.conn
        trees = self._trees(sorted({item.doc_id for item in incoming}))
        inserts: list[tuple[Any, ...]] = []
        demote: list[tuple[int, str, str]] = []
        fill: list[tuple[bytes, int, int, str, str]] = []
        reparent: list[tuple[str, int, str, str]] = []
        held: list[tuple[int, str, str]] = []
        touched: set[str] = set()
        written = 0
        for item in incoming:
            tree = trees.setdefault(item.doc_id, {})
            current = tree.get(item.rev)
            if current is not None and not (current.leaf and current.bodiless):
                continue  # already here: never store the same revision twice
            sealed = item.sealed or db.seal_body(item.doc_id, item.rev, item.body)
            if current is not None:  # a leaf whose body we had dropped: restore it
                fill.append((sealed, int(carries_data(item.body)), db.id, item.doc_id,
                             item.rev))
                current.bodiless = False
                touched.add(item.doc_id)
                continue
            written += 1
            touched.add(item.doc_id)
            if not tree and len(item.path) == 1:  # a new document's first revision: common
                tree[item.rev] = _Row(None, True, item.deleted, False, True)
                inserts.append((db.id, item.doc_id, item.rev, None, 1, int(item.deleted),
                                sealed, int(carries_data(item.body))))
                continue
            for index, rev in enumerate(item.path):
                parent = item.path[index + 1] if index + 1 < len(item.path) else None
                row = tree.get(rev)
                if row is None:
                    newest = index == 0
                    tree[rev] = _Row(parent, newest, item.deleted and newest, not newest, True)
                    inserts.append((db.id, item.doc_id, rev, parent, int(newest),
                                    int(item.deleted and newest), sealed if newest else None,
                                    int(newest and carries_data(item.body))))
                    continue
                was_held = row.on_server
                if row.leaf:
                    row.leaf, row.bodiless = False, True
                    demote.append((db.id, item.doc_id, rev))
                if not row.on_server:  # the server's history holds it now
                    row.on_server = True
                    held.append((db.id, item.doc_id, rev))
                if row.parent is None and parent is not None:
                    row.parent = parent
                    reparent.append((parent, db.id, item.doc_id, rev))
                elif was_held:
                    break  # the rest of this history is already linked and on the server
        with db.store.transaction():
            conn.executemany(
                "INSERT INTO revs (db, doc_id, rev, parent, leaf, deleted, local, on_server, "
                f"body, atts, confirmed_at) VALUES (?, ?, ?, ?, ?, ?, 0, 1, ?, ?, {NOW_SQL})",
                inserts)
            conn.executemany("UPDATE revs SET leaf = 0, body = NULL, atts = 0 WHERE db = ? "
                             "AND doc_id = ? AND rev = ?", demote)
            conn.executemany("UPDATE revs SET body = ?, atts = ? WHERE db = ? AND doc_id = ? "
                             "AND rev = ?", fill)
            conn.executemany("UPDATE revs SET parent = ? WHERE db = ? AND doc_id = ? AND "
                             "rev = ?", reparent)
            conn.executemany(f"UPDATE revs SET on_server = 1, confirmed_at = {NOW_SQL} "
                             "WHERE db = ? AND doc_id = ? AND rev = ?", held)
            ordered = sorted(touched)
            first_seq = db.reserve_seqs(len(ordered))
            db.write_doc_rows([
                (doc_id, [Leaf(rev, row.deleted) for rev, row in trees[doc_id].items()
                          if row.leaf], first_seq + offset)
                for offset, doc_id in enumerate(ordered)])
        return written

    # -- push -------------------------------------------------------------------------------

    def changes_since(self, since: int, limit: int) -> list[tuple[str, int]]:
        """``(doc_id, seq)`` of documents changed after ``since``, oldest change first."""
        return [(str(doc_id), int(seq)) for doc_id, seq in self.db.conn.execute(
            "SELECT doc_id, seq FROM docs WHERE db = ? AND seq > ? ORDER BY seq LIMIT ?",
            (self.db.id, since, limit))]

    def leaves_to_offer(self, doc_ids: list[str], *, all_leaves: bool = False
                        ) -> dict[str, list[str]]:
        """Leaf revisions the server may lack: those not known to be on it, except ones it
        refused and a person has not acted on yet (or, with ``all_leaves``, every leaf)."""
        result: dict[str, list[str]] = {}
        condition = "" if all_leaves else (
            " AND on_server = 0 AND NOT EXISTS (SELECT 1 FROM rejections j WHERE j.db = "
            "revs.db AND j.doc_id = revs.doc_id AND j.rev = revs.rev AND j.state = 'open')")
        for part in chunks(doc_ids):
            marks = ",".join("?" * len(part))
            for doc_id, rev in self.db.conn.execute(
                    f"SELECT doc_id, rev FROM revs WHERE db = ? AND leaf = 1{condition} "
                    f"AND doc_id IN ({marks})", (self.db.id, *part)):
                result.setdefault(doc_id, []).append(rev)
        return result

    def docs_for_push(self, wanted: Mapping[str, Iterable[str]]) -> list[Doc]:
        """Each wanted revision as ``_bulk_docs?new_edits=false`` takes it (with history)."""
        docs: list[Doc] = []
        for doc_id, revs in wanted.items():
            parents = self.db.parents(doc_id)
            for rev in revs:
                doc = self.db.get(doc_id, rev)
                doc["_revisions"] = revisions_object(
                    self.db.history(doc_id, rev, parents))
                docs.append(doc)
        return docs

    def mark_on_server(self, written: Mapping[str, Iterable[str]]) -> None:
        """The server now holds these revisions and, with them, their whole history."""
        with self.db.store.transaction():
            for doc_id, revs in written.items():
                parents = self.db.parents(doc_id)
                ancestry = {r for rev in revs for r in self.db.history(doc_id, rev, parents)}
                self.db.conn.executemany(
                    "UPDATE revs SET on_server = 1, confirmed_at = coalesce(confirmed_at, "
                    f"{NOW_SQL}) WHERE db = ? AND doc_id = ? AND rev = ?",
                    [(self.db.id, doc_id, rev) for rev in ancestry])

    # -- helpers ----------------------------------------------------------------------------

    def _known_revs(self, doc_ids: list[str]) -> dict[str, set[str]]:
        known: dict[str, set[str]] = {}
        for part in chunks(doc_ids):
            marks = ",".join("?" * len(part))
            for doc_id, rev in self.db.conn.execute(
                    f"SELECT doc_id, rev FROM revs WHERE db = ? AND doc_id IN ({marks})",
                    (self.db.id, *part)):
                known.setdefault(doc_id, set()).add(rev)
        return known

    def _trees(self, doc_ids: list[str]) -> dict[str, dict[str, _Row]]:
        trees: dict[str, dict[str, _Row]] = {}
        for part in chunks(doc_ids):
            marks = ",".join("?" * len(part))
            for doc_id, rev, parent, leaf, deleted, bodiless, on_server in self.db.conn.execute(
                    "SELECT doc_id, rev, parent, leaf, deleted, body IS NULL, on_server "
                    f"FROM revs WHERE db = ? AND doc_id IN ({marks})", (self.db.id, *part)):
                trees.setdefault(doc_id, {})[rev] = _Row(parent, bool(leaf), bool(deleted),
                                                         bool(bodiless), bool(on_server))
        return trees
