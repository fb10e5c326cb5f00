"""Users, credentials and sessions as CouchDB 3.5 handles them.

CouchDB references: couch_users_db:before_doc_update/3 (password hashed on save),
couch_httpd_auth:default_authentication_handler/2 and handle_session_req/2 (basic auth, the
`_session` API, "Name or password is incorrect."), chttpd_auth_request:authorize_request_int/1
(`/_users/_all_docs` and `/_users/_changes` need a server admin, other `/_users/...` paths a
member), the CouchDB 3 default `_users` security object (admin-only members, so users cannot
read or edit their own user document: apache/couchdb#2881, docs PR couchdb-documentation#630),
chttpd_auth_cache (evicts a changed or deleted user, asynchronously on CouchDB: the tests poll).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from carecouch.couch import CouchClient, Database
from tests.helpers.fixtures import User
from tests.helpers.protocol import (
    NOT_ALLOWED,
    NOT_AUTHORIZED,
    NOT_SERVER_ADMIN,
    call,
)
from tests.helpers.waiting import wait_until

BAD_CREDENTIALS = (401, {"error": "unauthorized", "reason": "Name or password is incorrect."})


def user_doc_path(name: str) -> str:
    return f"_users/org.couchdb.user:{name}"


def test_admin_creates_user_with_roles_and_password_is_hashed(
        admin: CouchClient, make_user: Callable[..., User]) -> None:
    # couch_users_db:before_doc_update/3 -> save_doc/1 hashes `password`
    user = make_user(roles=["caseload:a", "clinical:nurse"])
    doc = admin.db("_users").get(f"org.couchdb.user:{user.name}")
    assert doc["name"] == user.name and doc["type"] == "user"
    assert doc["roles"] == ["caseload:a", "clinical:nurse"]
    assert "password" not in doc
    assert doc["password_scheme"] == "pbkdf2" and doc["derived_key"] and doc["salt"]


def test_basic_auth_carries_name_and_roles(make_user: Callable[..., User]) -> None:
    # couch_httpd_auth:default_authentication_handler/2; handle_session_req/2 (GET)
    user = make_user(roles=["caseload:a"])
    session = user.client.session()
    assert session["userCtx"] == {"name": user.name, "roles": ["caseload:a"]}
    assert session["info"]["authenticated"] == "default"


def test_wrong_password_is_401_everywhere(make_user: Callable[..., User],
                                          admin: CouchClient) -> None:
    # default_authentication_handler/2 throws before any handler runs
    user = make_user()
    with CouchClient(admin.url, user.name, "not-" + user.password, retries=0) as wrong:
        assert call(wrong, "GET", "_session") == BAD_CREDENTIALS
        assert call(wrong, "GET", "") == BAD_CREDENTIALS


def test_user_cannot_read_own_user_document(make_user: Callable[..., User],
                                            anonymous: CouchClient) -> None:
    # CouchDB 3: _users members are admins only; a user is not a member of _users.
    user = make_user()
    assert call(user.client, "GET", user_doc_path(user.name)) == (403, NOT_ALLOWED)
    assert call(anonymous, "GET", user_doc_path(user.name)) == (401, NOT_AUTHORIZED)


def test_user_cannot_read_other_user_documents(make_user: Callable[..., User]) -> None:
    # _users members are admins only: check_is_member/1
    user, other = make_user(), make_user()
    assert call(user.client, "GET", user_doc_path(other.name)) == (403, NOT_ALLOWED)


def test_user_cannot_list_users(make_user: Callable[..., User],
                                anonymous: CouchClient) -> None:
    # authorize_request_int: [<<"_users">>, <<"_all_docs">> | _] -> require_admin
    user = make_user()
    assert call(user.client, "GET", "_users/_all_docs") == (401, NOT_SERVER_ADMIN)
    assert call(user.client, "GET", "_users/_changes") == (401, NOT_SERVER_ADMIN)
    assert call(anonymous, "GET", "_users/_all_docs") == (401, NOT_SERVER_ADMIN)


def test_user_cannot_change_own_roles(make_user: Callable[..., User],
                                      admin: CouchClient) -> None:
    # _users members are admins only: the write never reaches the _auth validator
    user = make_user(roles=["caseload:a"])
    doc = admin.db("_users").get(f"org.couchdb.user:{user.name}")
    doc["roles"] = ["caseload:a", "caseload:b", "_admin"]
    assert call(user.client, "PUT", user_doc_path(user.name), body=doc) == (403, NOT_ALLOWED)
    assert admin.db("_users").get(doc["_id"])["roles"] == ["caseload:a"]
    assert user.client.session()["userCtx"]["roles"] == ["caseload:a"]


def test_deleted_user_is_refused_at_once(make_user: Callable[..., User],
                                         admin: CouchClient) -> None:
    # chttpd_auth_cache evicts the user on the _users change; then get_user_creds -> nil
    user = make_user(roles=["caseload:a"])
    assert user.client.session()["userCtx"]["name"] == user.name
    users = admin.db("_users")
    doc = users.get(f"org.couchdb.user:{user.name}")
    users.delete(doc["_id"], doc["_rev"])
    # No session survives the user document (CouchDB evicts its auth cache on the change).
    wait_until(lambda: call(user.client, "GET", "_session")[0] == 401, timeout=10,
               what="GET /_session answers 401")
    assert call(user.client, "GET", "_session") == BAD_CREDENTIALS


def test_changed_password_replaces_the_old_one(make_user: Callable[..., User],
                                               admin: CouchClient) -> None:
    # chttpd_auth_cache reloads the user; the old password no longer matches derived_key
    user = make_user()
    users = admin.db("_users")
    doc = users.get(f"org.couchdb.user:{user.name}")
    new_password = secrets.token_urlsafe(12)
    doc["password"] = new_password
    users.put(doc)
    with CouchClient(admin.url, user.name, new_password, retries=0) as fresh:
        wait_until(lambda: call(fresh, "GET", "_session")[0] == 200, timeout=10,
                   what="GET /_session answers 200")
        assert fresh.session()["userCtx"]["name"] == user.name
    assert call(user.client, "GET", "_session") == BAD_CREDENTIALS


def test_cookie_session_login_use_and_logout(make_user: Callable[..., User],
                                             admin: CouchClient,
                                             make_db: Callable[..., Database]) -> None:
    # couch_httpd_auth:handle_session_req/2 (POST, GET, DELETE), cookie_authentication_handler/2
    user = make_user(roles=["caseload:c"])
    db = make_db(security={"members": {"roles": ["caseload:c"]}})
    db.put({"_id": "d", "a": 1})
    with CouchClient(admin.url, retries=0) as browser:
        status, body = call(browser, "POST", "_session",
                            body={"name": user.name, "password": user.password})
        assert (status, body) == (200, {"ok": True, "name": user.name, "roles": ["caseload:c"]})
        session = browser.session()
        assert session["userCtx"] == {"name": user.name, "roles": ["caseload:c"]}
        assert session["info"]["authenticated"] == "cookie"
        assert call(browser, "GET", f"{db.path}/d")[1]["a"] == 1
        assert call(browser, "DELETE", "_session") == (200, {"ok": True})
        assert browser.session()["userCtx"] == {"name": None, "roles": []}
        assert call(browser, "GET", f"{db.path}/d") == (401, NOT_AUTHORIZED)


def test_cookie_login_with_wrong_password(make_user: Callable[..., User],
                                          admin: CouchClient) -> None:
    # couch_httpd_auth:handle_session_req/2 POST: 401 and the cookie cleared
    user = make_user()
    with CouchClient(admin.url, retries=0) as browser:
        assert call(browser, "POST", "_session",
                    body={"name": user.name, "password": "wrong"}) == BAD_CREDENTIALS
        assert browser.session()["userCtx"]["name"] is None


def test_cookie_session_ends_when_the_user_is_deleted(make_user: Callable[..., User],
                                                      admin: CouchClient,
                                                      make_db: Callable[..., Database]) -> None:
    # cookie_authentication_handler/2: get_user_creds -> nil leaves the request anonymous
    user = make_user(roles=["caseload:c"])
    db = make_db(security={"members": {"roles": ["caseload:c"]}})
    db.put({"_id": "d"})
    with CouchClient(admin.url, retries=0) as browser:
        call(browser, "POST", "_session", body={"name": user.name, "password": user.password})
        assert call(browser, "GET", f"{db.path}/d")[0] == 200
        users = admin.db("_users")
        doc = users.get(f"org.couchdb.user:{user.name}")
        users.delete(doc["_id"], doc["_rev"])
        wait_until(lambda: call(browser, "GET", f"{db.path}/d")[0] == 401, timeout=10,
                   what="the cookie is refused (401)")
        assert call(browser, "GET", f"{db.path}/d") == (401, NOT_AUTHORIZED)
        assert browser.session()["userCtx"] == {"name": None, "roles": []}
