"""The device store's SQLite schema, and how its file is opened.

What is stored in the clear, and why that is safe: database names, document ids (carecouch ids
are ``<type>:<uuid>``, never patient data), revision ids, deletion flags, sequence numbers and
replication checkpoints. Everything a clinician wrote — document bodies, attachments, a
server's reasons for refusing a write — is an AES-GCM ciphertext (:mod:`mobile_stub.crypto`).
No column is indexed by patient data; a lookup by subject would use a keyed HMAC token.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

SCHEMA_VERSION = "3"
# SQLite's own clock, as revs.confirmed_at keeps it (device time, UTC; only ever compared
# with the device's clock, for the attachment retention).
NOW_SQL = "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"
# Statements that bring a store of an older schema version to the next one.
MIGRATIONS = {
    "1": ["ALTER TABLE revs ADD COLUMN sent INTEGER NOT NULL DEFAULT 0"],
    # Attachment retention (mobile_stub/working_set.py): when the server was known to hold a
    # revision, and whether its stored body carries attachment data. Leaves of an older
    # store count as held from now, and as carrying data until the first pass looks.
    "2": ["ALTER TABLE revs ADD COLUMN confirmed_at TEXT",
          "ALTER TABLE revs ADD COLUMN atts INTEGER NOT NULL DEFAULT 0",
          f"UPDATE revs SET confirmed_at = {NOW_SQL} WHERE on_server = 1",
          "UPDATE revs SET atts = 1 WHERE leaf = 1 AND body IS NOT NULL",
          "CREATE INDEX IF NOT EXISTS revs_attachments ON revs (db) WHERE atts = 1"],
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- One row per replicated database; bound to one server so "the server has this revision"
-- (revs.on_server) means one thing.
CREATE TABLE IF NOT EXISTS dbs (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    server_url TEXT NOT NULL,
    filter     TEXT,               -- ReplicationFilter JSON, or NULL for everything
    update_seq INTEGER NOT NULL DEFAULT 0
);
-- Per document: its place in the local changes feed (seq) and its current state.
CREATE TABLE IF NOT EXISTS docs (
    db         INTEGER NOT NULL,
    doc_id     TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    winner     TEXT NOT NULL,
    deleted    INTEGER NOT NULL,
    conflicted INTEGER NOT NULL,
    PRIMARY KEY (db, doc_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS docs_by_seq ON docs (db, seq);
-- The revision tree: every known revision with its parent; bodies only on leaves
-- (like a compacted CouchDB database), encrypted. A rowid table: a pull appends rows in
-- arrival order, and only the small (db, doc_id, rev) index takes random inserts.
CREATE TABLE IF NOT EXISTS revs (
    db        INTEGER NOT NULL,
    doc_id    TEXT NOT NULL,
    rev       TEXT NOT NULL,
    parent    TEXT,                -- NULL for a first revision or a stemmed history
    leaf      INTEGER NOT NULL,
    deleted   INTEGER NOT NULL,
    local     INTEGER NOT NULL,    -- 1: this device made the edit
    on_server INTEGER NOT NULL,    -- 1: the bound server is known to hold it
    body      BLOB,
    sent      INTEGER NOT NULL DEFAULT 0,  -- 1: pushed, the server not yet heard to hold it
    confirmed_at TEXT,             -- device time the server was first known to hold it
    atts      INTEGER NOT NULL DEFAULT 0,  -- 1: the body carries attachment data
    UNIQUE (db, doc_id, rev)
);
-- Partial: only revisions waiting to be pushed are indexed, so a pull adds no entries here.
CREATE INDEX IF NOT EXISTS revs_unpushed ON revs (db, doc_id) WHERE on_server = 0 AND leaf = 1;
-- Partial too: the leaves whose attachment data an attachment retention may take away.
CREATE INDEX IF NOT EXISTS revs_attachments ON revs (db) WHERE atts = 1;
-- _local documents: replication checkpoints (sequences and session ids only).
CREATE TABLE IF NOT EXISTS local_docs (
    db   INTEGER NOT NULL,
    id   TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (db, id)
) WITHOUT ROWID;
-- Writes the server refused: never dropped; the sealed part holds the reason and the
-- refused revision's full body, so it survives even when its branch is discarded.
CREATE TABLE IF NOT EXISTS rejections (
    db          INTEGER NOT NULL,
    doc_id      TEXT NOT NULL,
    rev         TEXT NOT NULL,
    state       TEXT NOT NULL,     -- open | retried | discarded | corrected
    recorded_at TEXT NOT NULL,
    resolved_by TEXT,              -- the revision that replaced it, after a retry
    sealed      BLOB NOT NULL,
    PRIMARY KEY (db, doc_id, rev)
) WITHOUT ROWID;
"""


def connect(path: Path, *, timeout: float = 5.0) -> sqlite3.Connection:
    """Open the store file with settings that keep plaintext off the disk.

    - ``temp_store=MEMORY``: sorts and temporary tables never spill to temp files;
    - ``secure_delete=ON``: freed pages are zeroed, so an old ciphertext (or wiped key) does
      not linger in free space;
    - WAL journal: the ``-wal`` file holds page images, i.e. the same ciphertext as the
      database, and lets a reader run while the replicator writes.
    """
    conn = sqlite3.connect(path, isolation_level=None, timeout=timeout)
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # a clinician's edit survives a dead battery
    conn.execute("PRAGMA cache_size=-32000")  # 32 MB: the revs index of a large caseload
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def sidecar_files(path: Path) -> list[Path]:
    """The files SQLite may create next to the store."""
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal")]
