"""The embedded server's security store (embedded_server/fixes/security-store.js).

Before issue 10 the embedded server kept each database's security object in the document
`_local/_security`, which any member could rewrite. Data directories made then are migrated
once, at the first start with the store: the object moves into the store, the document goes,
and from then on a `_local/_security` is an ordinary local document, also across restarts.
Each test starts its own server on its own data directory.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from carecouch import embedded
from carecouch.couch import CouchClient

pytestmark = pytest.mark.embedded_only

STORE_DIR = ".carecouch-security"
ADMIN_ONLY = {"members": {"roles": ["_admin"]}, "admins": {"roles": ["_admin"]}}
LEGACY = {"members": {"roles": ["caseload:legacy"]}, "admins": {"roles": ["caseload-admin:x"]}}
OPEN = {"members": {"names": [], "roles": []}, "admins": {"names": ["intruder"], "roles": []}}


class Node:
    """One embedded server on a data directory that outlives it."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.password = secrets.token_urlsafe(12)
        self.client: CouchClient | None = None

    def start(self) -> CouchClient:
        state = embedded.start(self.data_dir, 0, "admin", self.password)
        self.client = CouchClient(state.url, "admin", self.password)
        return self.client

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
        embedded.stop(self.data_dir)

    def restart(self) -> CouchClient:
        self.stop()
        return self.start()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    server = Node(tmp_path / "couch")
    yield server
    server.stop()


def make_pre_fix_data_dir(node: Node) -> None:
    """A data directory as the embedded server left it before the fix: `legacy` holds its
    security object in `_local/_security`, and there is no security store."""
    client = node.start()
    db = client.db("legacy")
    db.create()
    db.put_local("_security", {"security": LEGACY})
    db.put({"_id": "p1", "type": "obs"})
    node.stop()
    shutil.rmtree(node.data_dir / STORE_DIR)


def test_pre_fix_security_is_migrated_once_and_then_inert(node: Node) -> None:
    make_pre_fix_data_dir(node)
    client = node.start()
    legacy = client.db("legacy")
    assert legacy.get_security() == LEGACY
    assert legacy.get_or_none("_local/_security") is None
    assert "legacy" in (node.data_dir / "server.log").read_text()

    # From now on `_local/_security` is an ordinary document, in old and new databases alike.
    legacy.put_local("_security", {"security": OPEN})
    later = client.db("later")
    later.create()
    later.put_local("_security", {"security": OPEN})
    assert legacy.get_security() == LEGACY
    assert later.get_security() == ADMIN_ONLY

    client = node.restart()
    assert client.db("legacy").get_security() == LEGACY
    assert client.db("later").get_security() == ADMIN_ONLY
    assert client.db("legacy").get("_local/_security")["security"] == OPEN


def test_security_set_over_http_survives_a_restart(node: Node) -> None:
    client = node.start()
    db = client.db("kept")
    db.create()
    db.put_security(LEGACY)
    client = node.restart()
    assert client.db("kept").get_security() == LEGACY
    assert client.db("kept").get_or_none("_local/_security") is None
