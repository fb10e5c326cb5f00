"""Test harness: every test talks to a running CouchDB-protocol server over HTTP.

With ``COUCHDB_URL`` (and ``COUCHDB_USER`` / ``COUCHDB_PASSWORD``) set, the suite runs against
that server (Apache CouchDB 3.5 in the cross-check). Otherwise one embedded server is started
for the session on a free port with a temporary data directory, exactly as
``carecouch server start`` does, and stopped at the end. If it dies, the test that noticed
fails with the tail of its log.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator

import pytest

from carecouch import embedded
from carecouch.couch import CouchClient, Database
from carecouch.errors import CouchUnauthorized
from tests.helpers.server import Server, unique_name

# Fixtures every directory uses, each defined once (a conftest defines only its directory's):
# users; caseload ids and the admin CLI; a bridge and its world; provisioned caseloads and
# their people.
pytest_plugins = ["tests.helpers.fixtures", "tests.helpers.caseloads", "tests.helpers.bridges",
                  "tests.helpers.provisioned"]

# The embedded server's password hashing for the suite: CouchDB's PBKDF2-SHA256 at a cost the
# suite can pay for its hundreds of users (production pins 600,000 iterations in
# deploy/couchdb.ini; benchmarks/ measure with that). Against COUCHDB_URL the server's own
# settings hold, and every test still passes, more slowly.
TEST_SETTINGS = {"chttpd_auth": {"iterations": "10"}}


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    url = os.environ.get("COUCHDB_URL")
    if url:
        user = os.environ.get("COUCHDB_USER", "")
        password = os.environ.get("COUCHDB_PASSWORD", "")
        if not user or not password:
            pytest.exit("COUCHDB_URL is set: COUCHDB_USER and COUCHDB_PASSWORD must be too", 2)
        yield Server(url.rstrip("/"), user, password, embedded=False)
        return
    data_dir = tmp_path_factory.mktemp("couch")
    user, password = "admin", secrets.token_urlsafe(16)
    try:
        state = embedded.start(data_dir, 0, user, password, settings=TEST_SETTINGS)
    except embedded.EmbeddedServerError as exc:
        pytest.exit(f"cannot start the embedded server: {exc}", 3)
    try:
        yield Server(state.url, user, password, embedded=True, data_dir=data_dir)
    finally:
        embedded.stop(data_dir)


@pytest.fixture(autouse=True)
def _server_stays_up(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail loudly, with the server's log, when the embedded server died during a test."""
    if "server" not in request.fixturenames:
        yield
        return
    srv: Server = request.getfixturevalue("server")
    srv.check_alive()
    yield
    srv.check_alive()


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No test leaks environment variables into the next one, and no developer's .env leaks
    into a test (the CLI reads CARECOUCH_ENV_FILE, here an empty file)."""
    saved = dict(os.environ)
    empty = tmp_path_factory.getbasetemp() / "empty.env"
    empty.touch()
    os.environ["CARECOUCH_ENV_FILE"] = str(empty)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(autouse=True)
def _skip_embedded_only(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("embedded_only") and os.environ.get("COUCHDB_URL"):
        pytest.skip("checks a fix of the embedded server itself")


@pytest.fixture(scope="session")
def admin(server: Server) -> Iterator[CouchClient]:
    with CouchClient(server.url, server.user, server.password) as client:
        try:
            client.session()
        except CouchUnauthorized:
            pytest.exit("the test server refused the admin credentials", 3)
        yield client


@pytest.fixture(scope="session")
def anonymous(server: Server) -> Iterator[CouchClient]:
    with CouchClient(server.url) as client:
        yield client


@pytest.fixture
def make_db(admin: CouchClient) -> Iterator[Callable[..., Database]]:
    """Factory for fresh databases, deleted after the test."""
    created: list[Database] = []

    def make(name: str | None = None, *, security: dict[str, object] | None = None) -> Database:
        db = admin.db(name or unique_name("test_"))
        db.create()
        created.append(db)
        if security is not None:
            db.put_security(security)
        return db

    yield make
    for db in created:
        db.destroy(missing_ok=True)


@pytest.fixture
def db(make_db: Callable[..., Database]) -> Database:
    """A fresh, empty database (admin-only, as CouchDB 3 creates them)."""
    return make_db()
