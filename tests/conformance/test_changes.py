"""The `_changes` feed and its filters, as CouchDB 3.5 answers them.

CouchDB references: chttpd_db:handle_changes_req/2 and parse_changes_query/1, couch_changes.erl
(configure_filter/4, filter/3, get_doc_ids/1, get_selector_and_fields/1, check_docids/1,
check_member_exists/2, apply_style/2), chttpd_external:json_req_obj (the filter's `req`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from carecouch.couch import CouchClient, Database
from tests.helpers.fixtures import User
from tests.helpers.protocol import call, replicated, rev_hash

FILTERS = {
    "by_kind": "function (doc, req) { return doc.kind === req.query.kind; }",
    "by_owner": "function (doc, req) { return doc.owner === req.userCtx.name; }",
    "uses_lib": ("function (doc, req) {"
                 " return require('lib/kinds').wanted.indexOf(doc.kind) !== -1; }"),
}


@pytest.fixture
def feed_db(db: Database) -> Database:
    db.put({"_id": "_design/app", "filters": FILTERS,
            "lib": {"kinds": "exports.wanted = ['b'];"}})
    db.bulk_docs([{"_id": "a1", "kind": "a", "n": "1"}, {"_id": "b1", "kind": "b", "n": "2"},
                  {"_id": "a2", "kind": "a", "n": "3"}])
    return db


def ids(feed: dict[str, Any]) -> list[str]:
    """The ids in a feed, sorted: a clustered CouchDB interleaves its shards' changes."""
    return sorted(change["id"] for change in feed["results"])


def test_since_and_limit(feed_db: Database) -> None:
    # couch_changes:send_changes/3 from `since`; chttpd_db:parse_changes_query/1 `limit`
    everything = feed_db.changes()
    assert ids(everything) == ["_design/app", "a1", "a2", "b1"]
    first = feed_db.changes(limit=1)
    assert len(first["results"]) == 1
    rest = ids(feed_db.changes(since=first["last_seq"]))
    assert rest == sorted(set(ids(everything)) - set(ids(first)))
    feed_db.put({"_id": "later"})
    assert ids(feed_db.changes(since=everything["last_seq"])) == ["later"]


def test_include_docs_and_deleted(feed_db: Database) -> None:
    # couch_changes:changes_row/2: `deleted: true` and the winning body with include_docs
    rev = feed_db.get("a1")["_rev"]
    feed_db.delete("a1", rev)
    feed = feed_db.changes(include_docs=True)
    by_id = {change["id"]: change for change in feed["results"]}
    assert by_id["b1"]["doc"]["kind"] == "b"
    assert by_id["a1"]["deleted"] is True
    assert by_id["a1"]["doc"]["_deleted"] is True
    assert "deleted" not in by_id["b1"]


def test_style_all_docs_lists_every_leaf(db: Database) -> None:
    # apply_style(all_docs): every leaf revision, deleted ones included
    a, b, c, x = (rev_hash() for _ in range(4))
    db.bulk_docs([replicated("d", 1, [a]), replicated("d", 2, [b, a]),
                  replicated("d", 2, [c, a]), replicated("d", 3, [x, c, a], _deleted=True)],
                 new_edits=False)
    (change,) = db.changes(style="all_docs")["results"]
    assert {entry["rev"] for entry in change["changes"]} == {f"2-{b}", f"3-{x}"}
    (main,) = db.changes()["results"]
    assert main["changes"] == [{"rev": f"2-{b}"}]


def test_doc_ids_filter_post_and_get(feed_db: Database) -> None:
    # couch_changes:configure_filter("_doc_ids") -> get_doc_ids/1 (POST body or GET query)
    assert ids(feed_db.changes(filter="_doc_ids", body={"doc_ids": ["b1", "a2"]})) == [
        "a2", "b1"]
    assert ids(feed_db.changes(filter="_doc_ids", doc_ids=["a1"])) == ["a1"]


def test_doc_ids_filter_rejects_bad_ids(feed_db: Database) -> None:
    # couch_changes:check_docids/1
    expected = (400, {"error": "bad_request",
                      "reason": "`doc_ids` filter parameter is not a list of doc ids."})
    path = f"{feed_db.path}/_changes"
    assert call(feed_db.client, "GET", path, params={"filter": "_doc_ids"}) == expected
    assert call(feed_db.client, "POST", path, params={"filter": "_doc_ids"},
                body={"doc_ids": [1, 2]}) == expected


def test_design_filter(feed_db: Database) -> None:
    # couch_changes:filter/3 with {design_docs, Style}
    assert ids(feed_db.changes(filter="_design")) == ["_design/app"]


def test_selector_filter_post(feed_db: Database) -> None:
    # couch_changes:filter/3 with {selector, ...}: mango_selector:match on each revision
    feed = feed_db.changes(filter="_selector", body={"selector": {"kind": "a"}})
    assert ids(feed) == ["a1", "a2"]
    feed = feed_db.changes(filter="_selector", body={"selector": {"n": {"$gt": "1"}}})
    assert ids(feed) == ["a2", "b1"]


def test_selector_filter_get_is_a_bad_request(feed_db: Database, server: Any) -> None:
    # get_selector_and_fields/1 for anything but POST
    assert call(feed_db.client, "GET", f"{feed_db.path}/_changes",
                params={"filter": "_selector"}) == (
        400, {"error": "bad_request", "reason": "Selector must be specified in POST payload"})
    assert call(feed_db.client, "GET", f"{feed_db.path}/_changes",
                params={"filter": "_selector", "selector": {"kind": "a"}})[0] == 400
    # ... and the server is still there to answer
    assert ids(feed_db.changes(filter="_design")) == ["_design/app"]


def test_selector_filter_post_without_selector(feed_db: Database) -> None:
    # couch_changes:check_selector/1
    assert call(feed_db.client, "POST", f"{feed_db.path}/_changes",
                params={"filter": "_selector"}, body={}) == (
        400, {"error": "bad_request", "reason": "Selector error: expected a JSON object"})


def test_design_document_filter_with_query_params(feed_db: Database) -> None:
    # couch_changes:filter/3 {custom, ...} -> couch_query_servers:filter_docs/5
    assert ids(feed_db.changes(filter="app/by_kind", kind="b")) == ["b1"]
    assert ids(feed_db.changes(filter="app/by_kind", kind="a")) == ["a1", "a2"]


def test_design_document_filter_gets_query_values_as_strings(feed_db: Database) -> None:
    # chttpd_external:json_req_obj: query values are the strings sent (here "2", not 2)
    feed_db.put({"_id": "_design/num", "filters": {
        "by_n": "function (doc, req) { return doc.n === req.query.n; }"}})
    assert ids(feed_db.changes(filter="num/by_n", n="2")) == ["b1"]


def test_design_document_filter_sees_user_ctx(make_db: Callable[..., Database],
                                              make_user: Callable[..., User]) -> None:
    # chttpd_external:json_req_obj: req.userCtx of the caller
    db = make_db(security={"members": {"roles": ["caseload:f"]}})
    db.put({"_id": "_design/app", "filters": FILTERS})
    user = make_user(roles=["caseload:f"])
    db.bulk_docs([{"_id": "mine", "owner": user.name}, {"_id": "theirs", "owner": "x"}])
    feed = user.client.db(db.name).changes(filter="app/by_owner")
    assert ids(feed) == ["mine"]


def test_design_document_filter_can_require_modules(feed_db: Database) -> None:
    # couchjs require(): CommonJS modules of the design document
    assert ids(feed_db.changes(filter="app/uses_lib")) == ["b1"]


def test_design_document_filter_post(feed_db: Database) -> None:
    # chttpd_db:handle_changes_req/2 (POST) -> the same configure_filter/4
    feed = feed_db.changes(filter="app/by_kind", kind="a", body={})
    assert ids(feed) == ["a1", "a2"]


def test_unknown_filters(feed_db: Database) -> None:
    # couch_changes:configure_filter/4, open_ddoc/2, check_member_exists/2
    path = f"{feed_db.path}/_changes"
    client = feed_db.client
    assert call(client, "GET", path, params={"filter": "nope/by_kind"}) == (
        404, {"error": "not_found", "reason": "missing"})
    assert call(client, "GET", path, params={"filter": "app/nope"}) == (
        404, {"error": "not_found", "reason": "missing json key: nope"})
    assert call(client, "GET", path, params={"filter": "_nope"}) == (
        400, {"error": "bad_request", "reason": "unknown builtin filter name"})
    assert call(client, "GET", path, params={"filter": "a/b/c"}) == (
        400, {"error": "bad_request",
              "reason": "`filter` must be of the form `designname/filtername`"})


def test_doc_ids_in_body_ignored_without_the_filter(feed_db: Database) -> None:
    # chttpd reads doc_ids only for filter=_doc_ids (configure_filter/4)
    feed = feed_db.changes(body={"doc_ids": ["a1"]})
    assert ids(feed) == ["_design/app", "a1", "a2", "b1"]


def test_members_only_feed_refuses_outsiders(feed_db: Database, anonymous: CouchClient) -> None:
    # chttpd_auth_request:db_authorization_check/1 before the handler
    path = f"{feed_db.path}/_changes"
    assert call(anonymous, "POST", path, params={"filter": "_selector"},
                body={"selector": {}})[0] == 401
