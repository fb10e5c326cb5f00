"""The CouchDB-protocol server the suite talks to (tests/conftest.py starts or finds it)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from carecouch import embedded


@dataclass(frozen=True)
class Server:
    url: str
    user: str
    password: str
    embedded: bool
    data_dir: Path | None = None

    def check_alive(self) -> None:
        if not self.embedded or self.data_dir is None:
            return
        current, _ = embedded.status(self.data_dir)
        if current != "running":
            pytest.fail(f"the embedded server is {current}; its log ends:\n"
                        f"{embedded.log_tail(self.data_dir, 40)}", pytrace=False)


def unique_name(prefix: str = "t") -> str:
    """A database-safe, collision-free name (``t3f9a...``)."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"
