"""The security boundary: who may read and write a database, as CouchDB 3.5 decides it.

CouchDB references: chttpd_auth_request:authorize_request/1 (runs before every handler:
server-admin paths, db_authorization_check/1, require_db_admin/1), couch_db:check_is_member/1,
check_is_admin/1, is_public_db/1 and throw_security_error/1,2 (401 `unauthorized` for anonymous
users, 403 `forbidden` for authenticated ones), couch_httpd:verify_is_server_admin/1,
couch_db_updater:default_security_object/1 (`[couchdb] default_security = admin_only`),
chttpd_db:validate_security_can_be_edited/1, fabric_db_meta:set_security/3,
rel/overlay/etc/default.ini (`admin_only_all_dbs = true`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from carecouch.couch import CouchClient, Database
from tests.helpers.fixtures import User
from tests.helpers.protocol import (
    MISSING,
    NOT_ALLOWED,
    NOT_AUTHORIZED,
    NOT_SERVER_ADMIN,
    call,
    replicated,
    rev_hash,
)
from tests.helpers.waiting import wait_until

ADMIN_ONLY = {"members": {"roles": ["_admin"]}, "admins": {"roles": ["_admin"]}}
NOT_DB_ADMIN = "You are not a db or server admin."


@dataclass
class Ward:
    """A members-only database with a member, a db admin (both by role) and an outsider."""

    db: Database
    member: User
    db_admin: User
    outsider: User


@pytest.fixture
def ward(make_db: Callable[..., Database], make_user: Callable[..., User]) -> Ward:
    db = make_db(security={"members": {"roles": ["caseload:w1"]},
                           "admins": {"roles": ["caseload-admin:w1"]}})
    db.put({"_id": "p1", "type": "obs", "kind": "a"})
    db.put({"_id": "_design/app", "views": {"all": {"map": "function (doc) { emit(doc._id); }"}}})
    db.put_local("cp", {"last_seq": "0"})
    return Ward(db, make_user(roles=["caseload:w1"]), make_user(roles=["caseload-admin:w1"]),
                make_user(roles=["caseload:w2"]))


# Every read route a replicating device or a client uses: (method, path suffix, body); a
# query string in the suffix is sent as parameters.
READS: list[tuple[str, str, Any]] = [
    ("GET", "", None),
    ("GET", "/p1", None),
    ("GET", "/_all_docs", None),
    ("POST", "/_all_docs", {"keys": ["p1"]}),
    ("GET", "/_changes", None),
    ("POST", "/_changes?filter=_selector", {"selector": {"type": "obs"}}),
    ("POST", "/_bulk_get", {"docs": [{"id": "p1"}]}),
    ("POST", "/_find", {"selector": {"type": "obs"}}),
    ("GET", "/_index", None),
    ("POST", "/_explain", {"selector": {"type": "obs"}}),
    ("POST", "/_revs_diff", {"p1": ["1-" + "0" * 32]}),
    ("GET", "/_design/app", None),
    ("GET", "/_design/app/_view/all", None),
    ("GET", "/_security", None),
    ("GET", "/_local/cp", None),
    ("GET", "/_local_docs", None),
    ("POST", "/_local_docs", {"keys": ["_local/cp"]}),
]

WRITES: list[tuple[str, str, Any]] = [
    ("PUT", "/new1", {"a": 1}),
    ("POST", "", {"_id": "new2"}),
    ("POST", "/_bulk_docs", {"docs": [{"_id": "new3"}]}),
    ("POST", "/_bulk_docs", {"new_edits": False,
                             "docs": [replicated("new4", 1, ["a" * 32])]}),
    ("PUT", "/_local/cp2", {"last_seq": "1"}),
]


def _path(db: Database, suffix: str) -> str:
    return db.path + suffix


def request(client: CouchClient, method: str, db: Database, suffix: str,
            body: Any = None) -> tuple[int, Any]:
    path, _, query = suffix.partition("?")
    params = dict(part.split("=", 1) for part in query.split("&")) if query else None
    return call(client, method, _path(db, path), params=params, body=body)


@pytest.mark.parametrize(("method", "suffix", "body"), READS + WRITES,
                         ids=[f"{m} {s or '/'}" for m, s, _ in READS + WRITES])
def test_anonymous_gets_401_on_members_only_database(
        ward: Ward, anonymous: CouchClient, method: str, suffix: str, body: Any) -> None:
    # db_authorization_check -> check_is_member -> throw_security_error(name = null)
    assert request(anonymous, method, ward.db, suffix, body) == (401, NOT_AUTHORIZED)


@pytest.mark.parametrize(("method", "suffix", "body"), READS + WRITES,
                         ids=[f"{m} {s or '/'}" for m, s, _ in READS + WRITES])
def test_authenticated_non_member_gets_403(
        ward: Ward, method: str, suffix: str, body: Any) -> None:
    # throw_security_error for a named user: forbidden
    assert request(ward.outsider.client, method, ward.db, suffix, body) == (403, NOT_ALLOWED)


@pytest.mark.parametrize(("method", "suffix", "body"), READS,
                         ids=[f"{m} {s or '/'}" for m, s, _ in READS])
def test_member_by_role_may_read(ward: Ward, method: str, suffix: str, body: Any) -> None:
    # couch_db:is_member/1: a role listed in members.roles
    status, _ = request(ward.member.client, method, ward.db, suffix, body)
    assert status == 200


def test_member_reads_what_was_written(ward: Ward) -> None:
    # couch_db:check_is_member/1 passes; mango and _bulk_get answer normally
    client = ward.member.client
    assert call(client, "GET", _path(ward.db, "/p1"))[1]["kind"] == "a"
    status, body = call(client, "POST", _path(ward.db, "/_find"),
                        body={"selector": {"type": "obs"}})
    assert status == 200 and [d["_id"] for d in body["docs"]] == ["p1"]
    status, body = call(client, "POST", _path(ward.db, "/_bulk_get"),
                        body={"docs": [{"id": "p1"}]})
    assert status == 200 and body["results"][0]["docs"][0]["ok"]["_id"] == "p1"


def test_member_may_write_documents_and_local_checkpoints(ward: Ward) -> None:
    # members write any non-design document (couch_db:validate_doc_update/3)
    client = ward.member.client
    db = ward.member.client.db(ward.db.name)
    assert db.put({"_id": "n1", "a": 1})["ok"] is True
    assert db.bulk_docs([{"_id": "n2"}])[0]["ok"] is True
    assert db.bulk_docs([replicated("n3", 1, [rev_hash()])], new_edits=False) == []
    assert db.put_local("device-cp", {"last_seq": "5"})["ok"] is True
    assert call(client, "GET", _path(ward.db, "/_local/device-cp"))[1]["last_seq"] == "5"


def test_member_cannot_write_design_documents(ward: Ward) -> None:
    # validate_doc_update/3 for `_design/`: check_is_admin -> 403 for a named user
    client = ward.member.client
    ddoc = {"views": {"v": {"map": "function (doc) {}"}}}
    assert call(client, "PUT", _path(ward.db, "/_design/mine"), body=ddoc) == (
        403, {"error": "forbidden", "reason": NOT_DB_ADMIN})
    status, body = call(client, "POST", _path(ward.db, "/_bulk_docs"),
                        body={"docs": [{"_id": "ok1"}, {"_id": "_design/mine", **ddoc}]})
    assert status == 201
    assert body[0]["ok"] is True
    assert body[1] == {"id": "_design/mine", "error": "forbidden", "reason": NOT_DB_ADMIN}
    assert ward.db.get_or_none("_design/mine") is None


def test_member_cannot_replicate_design_documents(ward: Ward) -> None:
    # also for new_edits=false (security_validation_test.exs "Ddoc writes with ... replication")
    status, body = call(ward.member.client, "POST", _path(ward.db, "/_bulk_docs"), body={
        "new_edits": False, "docs": [replicated("_design/x", 1, ["b" * 32])]})
    assert status == 201
    assert body == [{"id": "_design/x", "rev": "1-" + "b" * 32, "error": "forbidden",
                     "reason": NOT_DB_ADMIN}]


def test_anonymous_cannot_write_design_documents_in_public_database(
        make_db: Callable[..., Database], anonymous: CouchClient) -> None:
    # check_is_admin for an anonymous user: 401 unauthorized, same reason
    db = make_db(security={})
    assert call(anonymous, "PUT", _path(db, "/_design/x"), body={}) == (
        401, {"error": "unauthorized", "reason": NOT_DB_ADMIN})


def test_db_admin_by_role_may_write_design_documents_and_security(ward: Ward) -> None:
    # couch_db:check_is_admin/1: a role listed in admins.roles
    client = ward.db_admin.client
    status, body = call(client, "PUT", _path(ward.db, "/_design/admin"), body={"views": {}})
    assert status == 201 and body["ok"] is True
    new_security = {"members": {"roles": ["caseload:w1", "caseload:extra"]},
                    "admins": {"roles": ["caseload-admin:w1"]}}
    assert call(client, "PUT", _path(ward.db, "/_security"), body=new_security) == (
        200, {"ok": True})
    assert ward.db.get_security() == new_security


def test_member_cannot_change_security(ward: Ward) -> None:
    # couch_db:set_security/2 -> check_is_admin throws on every shard; fabric_db_meta:
    # set_security/3 is left without a majority: 500 error/no_majority. Nothing changes.
    before = ward.db.get_security()
    status, body = call(ward.member.client, "PUT", _path(ward.db, "/_security"),
                        body={"members": {"names": [ward.member.name]}})
    assert (status, body) == (500, {"error": "error", "reason": "no_majority"})
    assert ward.db.get_security() == before


def test_users_database_security_cannot_be_edited(admin: CouchClient) -> None:
    # chttpd_db:validate_security_can_be_edited/1 (users_db_security_editable = false)
    users = admin.db("_users")
    current = users.get_security()
    assert call(admin, "PUT", "_users/_security", body=current) == (
        403, {"error": "forbidden",
              "reason": "You can't edit the security object of the user database."})


def test_compaction_needs_a_db_admin(ward: Ward) -> None:
    # chttpd_auth_request:require_db_admin/1 throws unauthorized for everyone
    assert call(ward.member.client, "POST", _path(ward.db, "/_compact"), body={}) == (
        401, {"error": "unauthorized", "reason": "You are not a server or db admin."})
    assert call(ward.outsider.client, "POST", _path(ward.db, "/_compact"), body={}) == (
        403, NOT_ALLOWED)
    assert call(ward.db_admin.client, "POST", _path(ward.db, "/_compact"), body={}) == (
        202, {"ok": True})


# -- defect 4: new databases are admin-only -------------------------------------------------------

def test_new_database_security_is_admin_only(db: Database) -> None:
    # couch_db_updater:default_security_object/1 with default_security = admin_only
    assert db.get_security() == ADMIN_ONLY


def test_new_database_is_closed_to_users_and_anonymous(
        db: Database, anonymous: CouchClient, make_user: Callable[..., User]) -> None:
    # default security object: members are `_admin` only
    db.put({"_id": "secret"})
    user = make_user(roles=["anything"])
    assert call(anonymous, "GET", _path(db, "/secret")) == (401, NOT_AUTHORIZED)
    assert call(user.client, "GET", _path(db, "/secret")) == (403, NOT_ALLOWED)
    assert call(anonymous, "PUT", _path(db, "/x"), body={}) == (401, NOT_AUTHORIZED)
    assert call(user.client, "PUT", _path(db, "/x"), body={}) == (403, NOT_ALLOWED)
    assert call(user.client, "GET", _path(db, "/_all_docs")) == (403, NOT_ALLOWED)


def test_explicit_empty_security_makes_a_database_public(
        db: Database, anonymous: CouchClient) -> None:
    # couch_db:is_public_db/1: no member names and no member roles -> everyone is a member
    db.put_security({})
    assert db.get_security() == {}
    status, body = call(anonymous, "PUT", _path(db, "/open"), body={"a": 1})
    assert status == 201 and body["ok"] is True
    assert call(anonymous, "GET", _path(db, "/open"))[1]["a"] == 1


def test_membership_by_name(make_db: Callable[..., Database],
                            make_user: Callable[..., User]) -> None:
    # couch_db:is_authorized/2: members.names
    user, other = make_user(), make_user()
    db = make_db(security={"members": {"names": [user.name]}})
    db.put({"_id": "d"})
    assert call(user.client, "GET", _path(db, "/d"))[0] == 200
    assert call(other.client, "GET", _path(db, "/d")) == (403, NOT_ALLOWED)


# -- server-level routes ------------------------------------------------------------------------

def test_all_dbs_needs_a_server_admin(anonymous: CouchClient, make_user: Callable[..., User],
                                      admin: CouchClient, db: Database) -> None:
    # admin_only_all_dbs = true: require_admin -> verify_is_server_admin (401 for everyone)
    assert call(anonymous, "GET", "_all_dbs") == (401, NOT_SERVER_ADMIN)
    assert call(make_user().client, "GET", "_all_dbs") == (401, NOT_SERVER_ADMIN)
    assert db.name in admin.all_dbs()


def test_creating_and_deleting_databases_needs_a_server_admin(
        db: Database, anonymous: CouchClient, make_user: Callable[..., User]) -> None:
    # chttpd_auth_request: PUT/DELETE /{db} -> require_admin
    user = make_user()
    assert call(user.client, "PUT", "someone_elses_db") == (401, NOT_SERVER_ADMIN)
    assert call(anonymous, "PUT", "someone_elses_db") == (401, NOT_SERVER_ADMIN)
    assert call(user.client, "DELETE", db.path) == (401, NOT_SERVER_ADMIN)
    assert db.exists()


def test_missing_database_is_404_for_everyone(anonymous: CouchClient,
                                              admin: CouchClient) -> None:
    # db_authorization_check: fabric:get_security raises database_does_not_exist first
    expected = (404, {"error": "not_found", "reason": "Database does not exist."})
    assert call(anonymous, "GET", "no_such_db_here/doc") == expected
    assert call(admin, "GET", "no_such_db_here") == expected
    assert call(admin, "POST", "no_such_db_here/_bulk_docs", body={"docs": []}) == expected


def test_session_and_root_are_open(anonymous: CouchClient) -> None:
    # chttpd_auth_request: `/` and server_authorization_check(_session) let everyone in
    assert call(anonymous, "GET", "")[0] == 200
    status, body = call(anonymous, "GET", "_session")
    assert status == 200 and body["userCtx"] == {"name": None, "roles": []}


def test_member_reads_document_missing_as_404(ward: Ward) -> None:
    # chttpd:error_info(not_found) once membership passed
    assert call(ward.member.client, "GET", _path(ward.db, "/nope")) == (404, MISSING)


def test_revoked_member_loses_access(ward: Ward, admin: CouchClient) -> None:
    # Roles come from the _users document on every request: removing the role ends access.
    users = admin.db("_users")
    doc = users.get(f"org.couchdb.user:{ward.member.name}")
    doc["roles"] = []
    users.put(doc)
    wait_until(lambda: call(ward.member.client, "GET", _path(ward.db, "/p1"))[0] == 403,
               timeout=10, what="the member without the role is refused")
    assert call(ward.member.client, "GET", _path(ward.db, "/p1")) == (403, NOT_ALLOWED)


# -- issue 10, attack 3: `_local/_security` is an ordinary local document -----------------------

def _take_over(member: User) -> dict[str, Any]:
    """What a hostile member writes: pouchdb-security's format, with themself as admin and no
    members (a public database)."""
    return {"security": {"admins": {"names": [member.name], "roles": []},
                         "members": {"names": [], "roles": []}}}


def test_member_writing_local_security_changes_nothing(
        ward: Ward, anonymous: CouchClient) -> None:
    # couch_db:update_doc/3 for a `_local/` id stores a local document; the security object
    # lives in the database header (couch_db:get_security/1) and is not touched.
    before = ward.db.get_security()
    client = ward.member.client
    status, body = call(client, "PUT", _path(ward.db, "/_local/_security"),
                        body=_take_over(ward.member))
    assert status == 201 and body["ok"] is True and body["id"] == "_local/_security"
    assert ward.db.get_security() == before
    assert call(client, "GET", _path(ward.db, "/_security")) == (200, before)
    # an ordinary local document: it reads back as written
    status, body = call(client, "GET", _path(ward.db, "/_local/_security"))
    assert status == 200 and body["security"] == _take_over(ward.member)["security"]
    # still a member, not an admin
    assert call(client, "PUT", _path(ward.db, "/_design/mine"), body={"views": {}}) == (
        403, {"error": "forbidden", "reason": NOT_DB_ADMIN})
    assert call(client, "PUT", _path(ward.db, "/_security"), body=before) == (
        500, {"error": "error", "reason": "no_majority"})
    assert call(client, "POST", _path(ward.db, "/_compact"), body={}) == (
        401, {"error": "unauthorized", "reason": "You are not a server or db admin."})
    # "emptied members" did not open the database
    assert request(anonymous, "GET", ward.db, "/p1") == (401, NOT_AUTHORIZED)
    assert request(ward.outsider.client, "GET", ward.db, "/p1") == (403, NOT_ALLOWED)


def test_member_reading_or_deleting_local_security_finds_no_security_object(
        ward: Ward) -> None:
    # Nobody wrote `_local/_security`: it does not exist (the security object is not a
    # document), and deleting it is a 404 that leaves the security object alone.
    before = ward.db.get_security()
    client = ward.member.client
    assert call(client, "GET", _path(ward.db, "/_local/_security")) == (404, MISSING)
    status, _ = call(client, "DELETE", _path(ward.db, "/_local/_security"),
                     params={"rev": "0-1"})
    assert status == 404
    assert ward.db.get_security() == before
    # written and deleted as an ordinary local document: still nothing changes
    rev = call(client, "PUT", _path(ward.db, "/_local/_security"), body={"a": 1})[1]["rev"]
    status, body = call(client, "DELETE", _path(ward.db, "/_local/_security"),
                        params={"rev": rev})
    assert status == 200 and body["ok"] is True
    assert ward.db.get_security() == before
    assert request(ward.member.client, "GET", ward.db, "/p1")[0] == 200


def test_recreated_database_starts_admin_only(admin: CouchClient,
                                              make_db: Callable[..., Database]) -> None:
    # couch_db_updater:init_db/6: a new database file has the default security object,
    # whatever the database of the same name had.
    db = make_db(security={"members": {"roles": ["caseload:old"]}, "admins": {"roles": []}})
    db.destroy()
    db.create()
    assert db.get_security() == ADMIN_ONLY
