"""`GET`/`POST /{db}/_local_docs`: the local documents of a database, listed for members.

CouchDB references: chttpd_db:db_req/2 (?IS_ALL_DOCS) and all_docs_view/4;
couch_mrview:all_docs_fold/4 with namespace `_local` (couch_db:fold_local_docs/4),
get_total_rows/2 and get_reduce_fun/1 (null total_rows and offset), map_fold/3 (rows
{id, key, value: {rev}}, plus doc with include_docs). Local documents include every device's
replication checkpoints, which any member may list and rewrite on CouchDB too (issue 10,
attack 1): tests of the device use this listing to play that attacker.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from carecouch.couch import Database
from tests.helpers.fixtures import User
from tests.helpers.protocol import NOT_ALLOWED, call

ROLE = "caseload:locals"


@pytest.fixture
def locals_db(make_db: Callable[..., Database]) -> Database:
    """A members-only database holding a record and two local documents."""
    locals_db = make_db(security={"members": {"roles": [ROLE]}, "admins": {"roles": []}})
    locals_db.put({"_id": "record", "type": "obs"})
    locals_db.put_local("device-a", {"source_last_seq": "12", "session_id": "s-a"})
    locals_db.put_local("device-b", {"source_last_seq": "40", "session_id": "s-b"})
    return locals_db


@pytest.fixture
def member(make_user: Callable[..., User]) -> User:
    return make_user(roles=[ROLE])


MINE = {"_local/device-a", "_local/device-b"}


def listed(body: Any) -> list[dict[str, Any]]:
    """The rows of the documents this test wrote (a server may keep local documents of its
    own in a database)."""
    return [row for row in body["rows"] if row.get("id", row.get("key")) in MINE]


def test_member_lists_local_documents(locals_db: Database, member: User) -> None:
    status, body = call(member.client, "GET", f"{locals_db.path}/_local_docs")
    assert status == 200
    assert body["total_rows"] is None and body["offset"] is None
    assert listed(body) == [
        {"id": "_local/device-a", "key": "_local/device-a", "value": {"rev": "0-1"}},
        {"id": "_local/device-b", "key": "_local/device-b", "value": {"rev": "0-1"}}]
    assert all(row["id"].startswith("_local/") for row in body["rows"])


def test_include_docs_gives_the_bodies(locals_db: Database, member: User) -> None:
    status, body = call(member.client, "GET", f"{locals_db.path}/_local_docs",
                        params={"include_docs": True})
    assert status == 200
    docs = {row["id"]: row["doc"] for row in listed(body)}
    assert docs["_local/device-b"]["source_last_seq"] == "40"
    assert docs["_local/device-b"]["_id"] == "_local/device-b"


def test_post_with_keys_answers_each_key_in_order(locals_db: Database, member: User) -> None:
    status, body = call(member.client, "POST", f"{locals_db.path}/_local_docs",
                        body={"keys": ["_local/device-b", "_local/nobody", "_local/device-a"]})
    assert status == 200
    assert body["rows"] == [
        {"id": "_local/device-b", "key": "_local/device-b", "value": {"rev": "0-1"}},
        {"key": "_local/nobody", "error": "not_found"},
        {"id": "_local/device-a", "key": "_local/device-a", "value": {"rev": "0-1"}}]


def test_keys_must_be_a_list(locals_db: Database, member: User) -> None:
    status, body = call(member.client, "POST", f"{locals_db.path}/_local_docs", body={"keys": "x"})
    assert status == 400 and body["error"] == "bad_request"


def test_outsider_cannot_list(locals_db: Database, make_user: Callable[..., User]) -> None:
    outsider = make_user(roles=["caseload:elsewhere"])
    assert call(outsider.client, "GET", f"{locals_db.path}/_local_docs") == (403, NOT_ALLOWED)


def test_a_member_may_rewrite_and_delete_another_devices_checkpoint(
        locals_db: Database, member: User) -> None:
    # The hazard devices must defend against: local documents are not validated
    # (couch_db:validate_doc_update/3) and belong to no one.
    client = member.client
    _, body = call(client, "GET", f"{locals_db.path}/_local_docs", params={"include_docs": True})
    victim = next(row["doc"] for row in listed(body) if row["id"] == "_local/device-a")
    status, written = call(client, "PUT", f"{locals_db.path}/_local/device-a",
                           body={**victim, "source_last_seq": "9999"})
    assert status == 201 and written["ok"] is True
    assert locals_db.get("_local/device-a")["source_last_seq"] == "9999"
    status, _ = call(client, "DELETE", f"{locals_db.path}/_local/device-a",
                     params={"rev": written["rev"]})
    assert status == 200
    _, body = call(client, "GET", f"{locals_db.path}/_local_docs")
    assert [row["id"] for row in listed(body)] == ["_local/device-b"]
