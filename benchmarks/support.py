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
from pathlib import Path

from carecouch import embedded


@contextmanager
def couch_server() -> Iterator[tuple[str, str, str, str]]:
    """``(url, admin user, admin password, description)`` of the server to measure."""
    url = os.environ.get("COUCHDB_URL")
    if url:
        yield url, os.environ["COUCHDB_USER"], os.environ["COUCHDB_PASSWORD"], url
        return
    with tempfile.TemporaryDirectory() as data_dir:
        password = secrets.token_urlsafe(16)
        state = embedded.start(Path(data_dir), 0, "admin", password)
        try:
            yield state.url, "admin", password, f"embedded server at {state.url}"
        finally:
            embedded.stop(Path(data_dir))
