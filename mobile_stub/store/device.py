"""The device store: one encrypted SQLite file holding every caseload the device replicates.

Opening a store needs no passphrase (connectivity and counts are not patient data); reading
or writing a document body does, because the data key is kept only wrapped by the
passphrase-derived key. ``wipe`` destroys that wrapped key first and then the files.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from carecouch.clock import utc_now

from .. import crypto
from ..errors import StoreExists, StoreLocked, StoreMissing, StoreWiped, UnknownDatabase
from ..passphrase import check as check_passphrase
from . import schema
from .documents import LocalDatabase
from .secrets import Secrets


class DeviceStore:
    """An open device store. Use :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        self._sealer: crypto.Sealer | None = None
        self._device_id: str | None = None

    # -- lifecycle --------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, passphrase: str, *,
               kdf: crypto.KdfParams | None = None) -> DeviceStore:
        """A new store with a fresh device id and random data key wrapped by ``passphrase``."""
        path = Path(path)
        if path.exists():
            raise StoreExists(f"a device store already exists at {path}")
        check_passphrase(passphrase)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.touch(mode=0o600)  # ciphertext, but still nobody else's to read
        conn = schema.connect(path)
        store = cls(path, conn)
        params = kdf or crypto.KdfParams.new()
        device_id = uuid.uuid4().hex
        data_key = crypto.new_data_key()
        wrapped = crypto.wrap_key(data_key, crypto.derive_key(passphrase, params), device_id)
        with store.transaction():
            for statement in _statements(schema.SCHEMA):
                conn.execute(statement)
            store._set_many({
                "schema_version": schema.SCHEMA_VERSION,
                "device_id": device_id,
                "created_at": utc_now(),
                "kdf": json.dumps(params.to_json()),
                "wrapped_key": base64.b64encode(wrapped).decode(),
                "offline": "0",
            })
        store._sealer = crypto.Sealer(data_key)
        return store

    @classmethod
    def open(cls, path: Path, passphrase: str | None = None) -> DeviceStore:
        """Open an existing store; unlocked when ``passphrase`` is given."""
        path = Path(path)
        if not path.is_file():
            raise StoreMissing(f"no device store at {path} (run `carecouch-device init`)")
        store = cls(path, schema.connect(path))
        if store.get_meta("wrapped_key") is None:
            store.close()
            raise StoreWiped(f"the device store at {path} was wiped")
        store._migrate()
        if passphrase is not None:
            store.unlock(passphrase)
        return store

    def _migrate(self) -> None:
        """Bring a store made by an earlier version up to this schema, in one transaction."""
        version = self.get_meta("schema_version") or "1"
        while version in schema.MIGRATIONS:
            with self.transaction():
                for statement in schema.MIGRATIONS[version]:
                    self.conn.execute(statement)
                version = str(int(version) + 1)
                self.set_meta("schema_version", version)

    def unlock(self, passphrase: str) -> None:
        params = crypto.KdfParams.from_json(json.loads(self._meta_required("kdf")))
        wrapped = base64.b64decode(self._meta_required("wrapped_key"))
        data_key = crypto.unwrap_key(wrapped, crypto.derive_key(passphrase, params),
                                     self.device_id)
        self._sealer = crypto.Sealer(data_key)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> DeviceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wipe(self) -> None:
        """Destroy the data key, then every file of the store. Irreversible."""
        with self.transaction():
            # secure_delete (schema.connect) zeroes the freed bytes of the wrapped key.
            self.conn.execute("DELETE FROM meta WHERE key = 'wrapped_key'")
            self.conn.execute("DELETE FROM meta WHERE key LIKE 'secret:%'")
            for table in ("revs", "docs", "rejections", "local_docs", "dbs"):
                self.conn.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._sealer = None
        self.close()
        for file in [self.path, *schema.sidecar_files(self.path)]:
            file.unlink(missing_ok=True)

    # -- keys -------------------------------------------------------------------------------

    @property
    def unlocked(self) -> bool:
        return self._sealer is not None

    @property
    def sealer(self) -> crypto.Sealer:
        if self._sealer is None:
            raise StoreLocked("the device store is locked: give its passphrase")
        return self._sealer

    @property
    def device_id(self) -> str:
        # Kept once read: it never changes, and threads other than the store's own (a
        # credential renewal during a sync) may need it.
        if self._device_id is None:
            self._device_id = self._meta_required("device_id")
        return self._device_id

    @property
    def secrets(self) -> Secrets:
        """Sealed secrets: the device key, credentials, tokens (needs the passphrase)."""
        return Secrets(self)

    # -- settings kept in the clear (no patient data) ---------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self._set_many({key: value})

    def _set_many(self, values: dict[str, str]) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                              list(values.items()))

    def _meta_required(self, key: str) -> str:
        value = self.get_meta(key)
        if value is None:
            raise StoreWiped(f"the device store at {self.path} has no {key}")
        return value

    @property
    def offline(self) -> bool:
        return self.get_meta("offline") == "1"

    def network_allowed(self) -> bool:
        """The offline flag as stored now, readable from any thread: the replicator checks it
        before every request, and ``carecouch-device offline`` (another process) may set it
        in the middle of a sync."""
        try:
            with closing(sqlite3.connect(self.path, timeout=5.0)) as conn:
                row = conn.execute("SELECT value FROM meta WHERE key = 'offline'").fetchone()
        except sqlite3.Error:
            return False  # no readable store, no network
        return row is None or row[0] != "1"

    def set_offline(self, offline: bool) -> None:
        self.set_meta("offline", "1" if offline else "0")

    @property
    def clock_offset_ms(self) -> int | None:
        value = self.get_meta("clock_offset_ms")
        return None if value is None else int(value)

    def save_clock_offset(self, offset_ms: int | None) -> None:
        if offset_ms is not None:
            self.set_meta("clock_offset_ms", str(offset_ms))

    # -- databases --------------------------------------------------------------------------

    def add_database(self, name: str, server_url: str, filter_json: str | None = None
                     ) -> LocalDatabase:
        """Register (or re-bind) a local copy of ``name`` on ``server_url``."""
        self.conn.execute(
            "INSERT INTO dbs (name, server_url, filter) VALUES (?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET server_url = excluded.server_url, "
            "filter = excluded.filter", (name, server_url.rstrip("/"), filter_json))
        return self.database(name)

    def database_names(self) -> list[str]:
        return [row[0] for row in self.conn.execute("SELECT name FROM dbs ORDER BY name")]

    def database(self, name: str) -> LocalDatabase:
        row = self.conn.execute("SELECT id, server_url, filter FROM dbs WHERE name = ?",
                                (name,)).fetchone()
        if row is None:
            raise UnknownDatabase(f"the device holds no database {name!r}")
        return LocalDatabase(self, int(row[0]), name, str(row[1]), row[2])

    # -- transactions -----------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit: a pulled batch, a local edit, a checkpoint."""
        if self.conn.in_transaction:  # nested: the outer transaction decides
            yield self.conn
            return
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")


def _statements(script: str) -> list[str]:
    # executescript would COMMIT our open transaction; run the statements one by one instead.
    body = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in body.split(";") if s.strip()]
