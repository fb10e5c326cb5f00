"""The CouchDB client: error mapping, quoting and encoding, against the real server."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from carecouch.couch import CouchClient, Database, doc_path, encode_params, split_credentials
from carecouch.errors import (
    CouchBadRequest,
    CouchConflict,
    CouchForbidden,
    CouchNotFound,
    CouchPreconditionFailed,
    CouchServerError,
    CouchUnauthorized,
    CouchUnreachable,
    error_for_status,
)
from tests.helpers.fixtures import User
from tests.helpers.server import Server, unique_name


def test_status_mapping_and_stdlib_bases() -> None:
    assert error_for_status(401) is CouchUnauthorized
    assert error_for_status(403) is CouchForbidden
    assert error_for_status(404) is CouchNotFound
    assert error_for_status(409) is CouchConflict
    assert error_for_status(412) is CouchPreconditionFailed
    assert error_for_status(500) is CouchServerError
    assert issubclass(CouchNotFound, KeyError)
    assert issubclass(CouchUnauthorized, PermissionError)
    assert issubclass(CouchUnreachable, ConnectionError)
    # KeyError would quote the message; ours stays one readable line.
    assert str(CouchNotFound("missing", error="not_found", method="GET", path="/db/x")) == (
        "GET /db/x: 404 not_found: missing")


def test_encode_params() -> None:
    assert encode_params({"include_docs": True, "limit": 5, "startkey": "a", "skip": None,
                          "keys": ["x"], "open_revs": "all"}) == {
        "include_docs": "true", "limit": "5", "startkey": '"a"', "keys": '["x"]',
        "open_revs": "all"}  # the keyword all, unquoted (chttpd_db:parse_doc_query)
    assert encode_params({"open_revs": ["1-a"]}) == {"open_revs": '["1-a"]'}


def test_doc_path_quotes_ids_but_keeps_special_prefixes() -> None:
    assert doc_path("observation:a/b c") == "observation%3Aa%2Fb%20c"
    assert doc_path("_design/carecouch") == "_design/carecouch"
    assert doc_path("_local/ck/1") == "_local/ck%2F1"


def test_split_credentials() -> None:
    assert split_credentials("http://u%40x:p%3Aw@127.0.0.1:5984/") == (
        "http://127.0.0.1:5984", "u@x", "p:w")
    with pytest.raises(ValueError):
        split_credentials("ftp://example.org")


def test_round_trip_of_awkward_ids(db: Database) -> None:
    for doc_id in ("observation:1/2", "note with spaces", "ünïcode:ß", "a+b&c=d?e#f"):
        db.put({"_id": doc_id, "v": 1})
        assert db.get(doc_id)["_id"] == doc_id


def test_missing_doc_is_not_found(db: Database) -> None:
    with pytest.raises(CouchNotFound) as info:
        db.get("nope")
    assert info.value.error == "not_found"
    assert db.get_or_none("nope") is None


def test_stale_rev_is_conflict(db: Database) -> None:
    first = db.put({"_id": "x"})
    db.put({"_id": "x", "_rev": first["rev"], "v": 2})
    with pytest.raises(CouchConflict):
        db.put({"_id": "x", "_rev": first["rev"], "v": 3})


def test_existing_db_is_precondition_failed(db: Database, admin: CouchClient) -> None:
    with pytest.raises(CouchPreconditionFailed):
        admin.db(db.name).create()
    assert admin.db(db.name).create(exist_ok=True) is False


def test_wrong_password_is_unauthorized(server: Server) -> None:
    with CouchClient(server.url, server.user, "wrong-password", retries=0) as client:
        with pytest.raises(CouchUnauthorized):
            client.all_dbs()


def test_validation_refusal_is_forbidden_with_reason(db: Database) -> None:
    db.put({"_id": "_design/rules", "validate_doc_update":
            "function (doc) { if (!doc.ok) { throw({forbidden: 'not ok'}); } }"})
    with pytest.raises(CouchForbidden) as info:
        db.put({"_id": "a"})
    assert info.value.reason == "not ok"
    db.put({"_id": "b", "ok": True})


def test_bad_request(db: Database) -> None:
    with pytest.raises(CouchBadRequest):
        db.client.request("POST", f"{db.path}/_bulk_docs", json_body={"docs": "nope"})


def test_non_member_is_refused(make_db: Callable[..., Database],
                               make_user: Callable[..., User]) -> None:
    members_only = make_db(security={"members": {"roles": ["caseload:x"]}})
    outsider = make_user(roles=["caseload:y"])
    with pytest.raises(CouchForbidden):
        outsider.client.db(members_only.name).get("anything")


def test_unreachable_server_is_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on that port now.
    with CouchClient(f"http://127.0.0.1:{port}", retries=1) as client:
        with pytest.raises(CouchUnreachable) as info:
            client.server_info()
    assert "cannot reach CouchDB" in str(info.value)


def test_stream_reads_changes_incrementally(db: Database) -> None:
    db.bulk_docs([{"_id": unique_name()} for _ in range(5)])
    with db.client.stream("GET", f"{db.path}/_changes") as response:
        chunks = list(response.iter_bytes(chunk_size=64))
    assert len(chunks) > 1
    assert b"".join(chunks).count(b'"id"') == 5
