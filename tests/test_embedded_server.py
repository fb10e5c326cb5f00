"""The embedded server's own mechanisms, each on a server of its own started on its own data
directory: the security store (embedded_server/fixes/security-store.js) and the attachment
limit and memory (fixes/attachments.js).

Before issue 10 the embedded server kept each database's security object in the document
`_local/_security`, which any member could rewrite. Data directories made then are migrated
once, at the first start with the store: the object moves into the store, the document goes,
and from then on a `_local/_security` is an ordinary local document, also across restarts.
"""

from __future__ import annotations

import base64
import configparser
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from carecouch import embedded
from carecouch.couch import CouchClient

pytestmark = pytest.mark.embedded_only

ROOT = Path(__file__).resolve().parent.parent
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
        self.pid = 0

    def start(self) -> CouchClient:
        state = embedded.start(self.data_dir, 0, "admin", self.password)
        self.client = CouchClient(state.url, "admin", self.password)
        self.pid = state.pid
        return self.client

    def peak_memory_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmHWM")

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


# -- attachments (fixes/attachments.js) --------------------------------------------------------

def deploy_setting(section: str, key: str) -> str:
    ini = configparser.ConfigParser(inline_comment_prefixes=(";",))
    ini.read(ROOT / "deploy" / "couchdb.ini")
    return ini[section][key]


def put_attachment(client: CouchClient, db_name: str, doc_id: str, content: object) -> int:
    db = client.db(db_name)
    rev = db.put({"_id": doc_id})["rev"]
    response = client.request("PUT", f"{db_name}/{doc_id}/scan.bin", params={"rev": rev},
                              content=content,  # type: ignore[arg-type]
                              headers={"Content-Type": "application/octet-stream"},
                              idempotent=False, ok=(413,))
    if response.status_code == 413:
        assert response.json() == {"error": "attachment_too_large", "reason": "scan.bin"}
    return response.status_code


def test_attachment_limit_is_the_one_production_couchdb_is_given(node: Node) -> None:
    limit = int(deploy_setting("couchdb", "max_attachment_size"))
    client = node.start()
    assert client.json("GET", "_config/couchdb/max_attachment_size") == str(limit)
    db = client.db("limits")
    db.create()
    assert put_attachment(client, "limits", "exactly", b"x" * limit) == 201
    assert put_attachment(client, "limits", "over", b"x" * (limit + 1)) == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(limit // 65536 + 1):
            yield b"x" * 65536

    assert put_attachment(client, "limits", "chunked", chunks()) == 413
    inline = {"_id": "inline", "_attachments": {"scan.bin": {
        "content_type": "application/octet-stream",
        "data": base64.b64encode(b"x" * (limit + 1)).decode()}}}
    response = client.request("PUT", "limits/inline", json_body=inline, idempotent=False,
                              ok=(413,))
    assert (response.status_code, response.json()) == (
        413, {"error": "attachment_too_large", "reason": "scan.bin"})
    assert db.get_or_none("over") is not None and db.get_or_none("inline") is None
    assert "_attachments" not in db.get("over")


def test_a_large_attachment_costs_little_memory(node: Node) -> None:
    # Was: a 15 MB attachment was turned into JSON as one number per byte (about 0.6 GB peak
    # for 15 MB, 2.6 GB for 50 MB); now the server stays within a few times the data.
    client = node.start()
    client.db("photos").create()
    data = bytes(range(256)) * (15 * 4096)
    assert put_attachment(client, "photos", "wound", data) == 201
    stored = client.request("GET", "photos/wound/scan.bin").content
    assert stored == data
    assert node.peak_memory_mb() < 450
