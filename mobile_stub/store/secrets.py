"""Secrets in the device store: the device's own signing key and what the bridge hands it
(credentials, the identity token, the policy snapshot, lease tokens, the pinned bridge key).

Each is kept in the ``meta`` table as ``secret:<name>``, sealed (AES-256-GCM with the store's
data key) and bound to its name and the device, so a value copied under another name, or
into another store, fails to open. Sealing also protects their integrity: a pinned key or a
snapshot cannot be swapped without the passphrase.

Writes use a connection of their own, opened per write: a credential renewal may run on a
replicator thread, and an SQLite connection belongs to the thread that opened it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from contextlib import closing

from ..errors import SecretDamaged
from . import schema
from .access import StoreAccess

PREFIX = "secret:"
_CONTEXT = "carecouch-device/secret/v1"


class Secrets:
    def __init__(self, store: StoreAccess) -> None:
        self.store = store

    def get(self, name: str) -> str | None:
        raw = self.store.get_meta(PREFIX + name)
        if raw is None:
            return None
        try:
            opened = self.store.sealer.open(base64.b64decode(raw), _CONTEXT,
                                            self.store.device_id, name)
        except ValueError as exc:  # includes base64's binascii.Error
            raise SecretDamaged(f"the store's sealed {name} does not open (damaged or "
                                "tampered with); wipe the device and enrol it again") from exc
        return opened.decode("utf-8")

    def put(self, name: str, value: str | None) -> None:
        self.put_many({name: value})

    def put_many(self, values: Mapping[str, str | None]) -> None:
        """Set (or, for ``None``, delete) several secrets in one transaction."""
        sealer, device_id = self.store.sealer, self.store.device_id
        sealed = [(PREFIX + name, base64.b64encode(sealer.seal(
            value.encode("utf-8"), _CONTEXT, device_id, name)).decode())
                  for name, value in values.items() if value is not None]
        gone = [(PREFIX + name,) for name, value in values.items() if value is None]
        with closing(schema.connect(self.store.path, timeout=30.0)) as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", sealed)
            conn.executemany("DELETE FROM meta WHERE key = ?", gone)
            conn.execute("COMMIT")

    def names(self, prefix: str = "") -> list[str]:
        """Names of the secrets that start with ``prefix`` (names are not secret)."""
        pattern = (PREFIX + prefix).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self.store.conn.execute(
            "SELECT key FROM meta WHERE key LIKE ? ESCAPE '\\' ORDER BY key", (pattern + "%",))
        return [str(row[0])[len(PREFIX):] for row in rows]
