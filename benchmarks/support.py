"""What every benchmark shares: a server to measure on, and a way to print figures.

Benchmarks run on demand (`.venv/bin/python benchmarks/<name>.py`), never in the test suite.
They use the server named by COUCHDB_URL / COUCHDB_USER / COUCHDB_PASSWORD, or start an
embedded one in a temporary directory exactly as the test harness does.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from carecouch import embedded


@dataclass(frozen=True)
class Target:
    """The server measured; ``pid`` only when this run started it (an embedded server)."""

    url: str
    user: str
    password: str
    description: str
    pid: int | None = None


@contextmanager
def bench_target() -> Iterator[Target]:
    url = os.environ.get("COUCHDB_URL")
    if url:
        yield Target(url.rstrip("/"), os.environ["COUCHDB_USER"],
                     os.environ["COUCHDB_PASSWORD"], url)
        return
    with tempfile.TemporaryDirectory() as data_dir:
        password = secrets.token_urlsafe(16)
        state = embedded.start(Path(data_dir), 0, "admin", password)
        try:
            yield Target(state.url, "admin", password, f"embedded server at {state.url}",
                         state.pid)
        finally:
            embedded.stop(Path(data_dir))


@contextmanager
def couch_server() -> Iterator[tuple[str, str, str, str]]:
    """``(url, admin user, admin password, description)`` of the server to measure."""
    with bench_target() as target:
        yield target.url, target.user, target.password, target.description
