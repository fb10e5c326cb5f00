"""What a store's parts (its databases, its secrets) need of the store that holds them.

:class:`~mobile_stub.store.device.DeviceStore` is the one implementation; the parts name this
protocol instead of it, so no module below the store imports the store.
"""

from __future__ import annotations

import sqlite3
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

from ..crypto import Sealer


class StoreAccess(Protocol):
    @property
    def path(self) -> Path: ...

    @property
    def conn(self) -> sqlite3.Connection: ...

    @property
    def sealer(self) -> Sealer: ...

    @property
    def device_id(self) -> str: ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...
