"""`_users` passwords as CouchDB 3.5 hashes, accepts, checks and upgrades them.

CouchDB references: couch_users_db:save_doc/1 (a `password` is replaced by `password_scheme`,
`pbkdf2_prf`, `salt`, `iterations`, `derived_key` at the configured cost; a document without
`password` is stored as sent, so an admin may write those fields itself), the `_users`
validate_doc_update (couch_js_functions.hrl: scheme, `iterations` and `derived_key` types),
couch_httpd_auth:authenticate/5 and authenticate_int_pbkdf2/3 (the PRF and iteration count
the document names; defaults sha and 10000; [chttpd_auth] min_iterations/max_iterations),
couch_passwords_cache (keyed by user name and salt), couch_password_hasher:needs_upgrade/1
(after a login, with [chttpd_auth] upgrade_hash_on_auth, a hash whose scheme, iterations or
PRF differ from the settings is rewritten with the same salt). Settings are read the way
chttpd_util:get_chttpd_auth_config/2 does: [chttpd_auth], then [couch_httpd_auth], then the
3.5 defaults (pbkdf2, sha256, 600000, upgrade on).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from carecouch.couch import CouchClient
from tests.helpers.fixtures import User
from tests.helpers.protocol import call
from tests.helpers.waiting import wait_until

BAD_CREDENTIALS = (401, {"error": "unauthorized", "reason": "Name or password is incorrect."})
DEFAULTS = {"password_scheme": "pbkdf2", "pbkdf2_prf": "sha256", "iterations": "600000",
            "upgrade_hash_on_auth": "true"}
DIGESTS = {"sha": "sha1", "sha224": "sha224", "sha256": "sha256", "sha384": "sha384",
           "sha512": "sha512"}


def setting(admin: CouchClient, key: str) -> str:
    for section in ("chttpd_auth", "couch_httpd_auth"):
        status, value = call(admin, "GET", f"_node/_local/_config/{section}/{key}")
        if status == 200:
            return str(value)
    return DEFAULTS[key]


def derive(password: str, salt: str, iterations: int, prf: str = "sha256") -> str:
    """couch_passwords:pbkdf2/4: the salt is used as the bytes of its text."""
    return hashlib.pbkdf2_hmac(DIGESTS[prf], password.encode(), salt.encode(),
                               iterations).hex()


def hashed_user(name: str, password: str, *, iterations: int = 1000, prf: str | None = "sha256",
                roles: list[str] | None = None) -> dict[str, Any]:
    salt = secrets.token_hex(16)
    doc: dict[str, Any] = {
        "_id": f"org.couchdb.user:{name}", "name": name, "type": "user",
        "roles": roles or [], "password_scheme": "pbkdf2", "salt": salt,
        "iterations": iterations, "derived_key": derive(password, salt, iterations, prf or "sha")}
    if prf is not None:
        doc["pbkdf2_prf"] = prf
    return doc


@pytest.fixture
def hashed(admin: CouchClient) -> Iterator[Callable[..., tuple[dict[str, Any], str]]]:
    """Factory: an admin writes a user document already hashed; removed after the test."""
    made: list[str] = []
    users = admin.db("_users")

    def make(**options: Any) -> tuple[dict[str, Any], str]:
        name = f"h{secrets.token_hex(6)}"
        password = secrets.token_urlsafe(32)
        doc = hashed_user(name, password, **options)
        doc["_rev"] = users.put(doc)["rev"]
        made.append(doc["_id"])
        return doc, password

    yield make
    for doc_id in made:
        doc = users.get_or_none(doc_id)
        if doc is not None:
            users.delete(doc_id, doc["_rev"])


def login(admin: CouchClient, name: str, password: str) -> tuple[int, Any]:
    with CouchClient(admin.url, name, password, retries=0) as client:
        return call(client, "GET", "_session")


@contextmanager
def auth_setting(admin: CouchClient, key: str, value: str) -> Iterator[None]:
    """Change an [chttpd_auth] setting of the (embedded) server for one test."""
    path = f"_node/_local/_config/chttpd_auth/{key}"
    status, before = call(admin, "GET", path)
    assert call(admin, "PUT", path, body=value)[0] == 200
    try:
        yield
    finally:
        if status == 200:
            call(admin, "PUT", path, body=str(before))
        else:
            call(admin, "DELETE", path)


def test_a_password_is_stored_hashed_at_the_configured_cost(
        admin: CouchClient, make_user: Callable[..., User]) -> None:
    # couch_users_db:save_doc/1, {ClearPassword, "pbkdf2"}
    user = make_user()
    doc = admin.db("_users").get(f"org.couchdb.user:{user.name}")
    iterations, prf = int(setting(admin, "iterations")), setting(admin, "pbkdf2_prf")
    assert "password" not in doc and "preserve_salt" not in doc
    assert doc["password_scheme"] == "pbkdf2"
    assert doc["pbkdf2_prf"] == prf and doc["iterations"] == iterations
    assert len(doc["salt"]) == 32 and int(doc["salt"], 16) >= 0  # couch_uuids:random/0
    assert doc["derived_key"] == derive(user.password, doc["salt"], iterations, prf)


def test_each_write_of_a_password_draws_a_new_salt(admin: CouchClient,
                                                   make_user: Callable[..., User]) -> None:
    user = make_user()
    users = admin.db("_users")
    first = users.get(f"org.couchdb.user:{user.name}")
    users.put({**first, "password": user.password})
    second = users.get(first["_id"])
    assert second["salt"] != first["salt"] and second["derived_key"] != first["derived_key"]
    assert login(admin, user.name, user.password)[0] == 200


def test_an_admin_may_write_a_user_already_hashed(
        admin: CouchClient, hashed: Callable[..., tuple[dict[str, Any], str]]) -> None:
    # save_doc/1 changes nothing without `password`; authenticate_int_pbkdf2/3 reads the
    # document's own PRF and iteration count
    doc, password = hashed(iterations=1000, roles=["caseload:a"])
    stored = admin.db("_users").get(doc["_id"])
    assert {k: stored[k] for k in doc} == doc
    status, body = login(admin, doc["name"], password)
    assert status == 200 and body["userCtx"] == {"name": doc["name"], "roles": ["caseload:a"]}
    assert login(admin, doc["name"], password[:-1] + "!") == BAD_CREDENTIALS
    with CouchClient(admin.url, retries=0) as browser:
        assert call(browser, "POST", "_session",
                    body={"name": doc["name"], "password": password}) == (
            200, {"ok": True, "name": doc["name"], "roles": ["caseload:a"]})


@pytest.mark.parametrize("prf", ["sha512", None])
def test_a_hash_is_checked_with_the_prf_it_names(
        admin: CouchClient, hashed: Callable[..., tuple[dict[str, Any], str]],
        prf: str | None) -> None:
    # authenticate_int_pbkdf2/3: `pbkdf2_prf` defaults to sha (PBKDF2-SHA1, 20-byte key)
    doc, password = hashed(iterations=20, prf=prf)
    assert len(doc["derived_key"]) == (128 if prf == "sha512" else 40)
    assert login(admin, doc["name"], password)[0] == 200


@pytest.mark.parametrize(("change", "reason"), [
    ({"iterations": "1000"}, "iterations must be a number."),
    ({"derived_key": 12}, "derived_key must be a string."),
    ({"password_scheme": "bcrypt"}, "Password scheme `bcrypt` not supported."),
])
def test_a_malformed_hash_is_refused_when_written(admin: CouchClient, change: dict[str, Any],
                                                  reason: str) -> None:
    # the `_users` validate_doc_update (couch_js_functions.hrl)
    doc = {**hashed_user(f"h{secrets.token_hex(6)}", "x"), **change}
    assert call(admin, "PUT", f"_users/{doc['_id']}", body=doc) == (
        403, {"error": "forbidden", "reason": reason})


def test_a_new_salt_ends_the_old_password(
        admin: CouchClient, hashed: Callable[..., tuple[dict[str, Any], str]]) -> None:
    # couch_passwords_cache is keyed by name and salt: a rotation that draws a new salt
    # leaves no cached entry for the old password
    doc, old = hashed()
    assert login(admin, doc["name"], old)[0] == 200  # the cache now holds it
    new = secrets.token_urlsafe(32)
    rotated = hashed_user(doc["name"], new)
    admin.db("_users").put({**rotated, "_rev": doc["_rev"]})
    wait_until(lambda: login(admin, doc["name"], old)[0] == 401, timeout=10,
               what="the old password is refused")
    assert login(admin, doc["name"], old) == BAD_CREDENTIALS
    assert login(admin, doc["name"], new)[0] == 200


def test_login_rehashes_a_weaker_hash_only_when_the_server_is_set_to(
        admin: CouchClient, hashed: Callable[..., tuple[dict[str, Any], str]]) -> None:
    # couch_password_hasher:maybe_upgrade_password_hash/6 and needs_upgrade/1
    configured = int(setting(admin, "iterations"))
    doc, password = hashed(iterations=1000 if configured != 1000 else 1001)
    assert login(admin, doc["name"], password)[0] == 200
    users = admin.db("_users")
    if setting(admin, "upgrade_hash_on_auth") == "true":
        wait_until(lambda: users.get(doc["_id"])["iterations"] == configured, timeout=15,
                   what="the hash is upgraded to the configured iterations")
        upgraded = users.get(doc["_id"])
        assert upgraded["salt"] == doc["salt"]  # preserve_salt: sessions and the cache hold
        assert upgraded["pbkdf2_prf"] == setting(admin, "pbkdf2_prf")
        assert login(admin, doc["name"], password)[0] == 200
    else:
        time.sleep(2)  # the server's own time: it would upgrade in the background
        assert users.get(doc["_id"])["_rev"] == doc["_rev"]


@pytest.mark.embedded_only  # changes a server setting, which a shared CouchDB should not see
def test_upgrade_at_login_rewrites_the_hash_with_the_same_salt(
        admin: CouchClient, hashed: Callable[..., tuple[dict[str, Any], str]]) -> None:
    configured = int(setting(admin, "iterations"))
    users = admin.db("_users")
    with auth_setting(admin, "upgrade_hash_on_auth", "true"):
        doc, password = hashed(iterations=configured + 7)
        assert login(admin, doc["name"], password)[0] == 200
        wait_until(lambda: users.get(doc["_id"])["iterations"] == configured, timeout=10,
                   what="the hash is upgraded to the configured iterations")
    upgraded = users.get(doc["_id"])
    assert upgraded["salt"] == doc["salt"]
    assert upgraded["derived_key"] == derive(password, doc["salt"], configured)
    assert "password" not in upgraded and "preserve_salt" not in upgraded
    assert login(admin, doc["name"], password)[0] == 200
    with auth_setting(admin, "upgrade_hash_on_auth", "false"):
        doc, password = hashed(iterations=configured + 7)
        assert login(admin, doc["name"], password)[0] == 200
        time.sleep(1)  # the server's own time: it would upgrade in the background
        assert users.get(doc["_id"])["_rev"] == doc["_rev"]


@pytest.mark.embedded_only  # changes a server setting
def test_a_hash_cheaper_than_min_iterations_is_refused(
        admin: CouchClient, hashed: Callable[..., tuple[dict[str, Any], str]]) -> None:
    # authenticate_int_pbkdf2/3 -> verify_iterations/1
    doc, password = hashed(iterations=1000)
    with auth_setting(admin, "min_iterations", "1001"):
        assert login(admin, doc["name"], password) == (
            403, {"error": "forbidden", "reason": "Iteration count is too low for this server"})
    assert login(admin, doc["name"], password)[0] == 200
