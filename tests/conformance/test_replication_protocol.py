"""The replication protocol endpoints and conflict handling, as CouchDB 3.5 answers them.

CouchDB references: chttpd_db.erl (db_req/2 for _revs_diff and _bulk_get, bulk_get_parse_args/2,
bulk_get_docs/3, bulk_get_json_error_map/4, db_doc_req/3 for open_revs, couch_doc_open/4),
couch_db.erl (find_missing/2, open_doc_revs_int/3, open_doc_int/3 for _conflicts and
_deleted_conflicts), couch_doc:to_doc_info/1 (winner: not deleted, then longest, then highest
rev id), couch_key_tree:get_key_leafs/2 (`latest`), couch_bt_engine_compactor (compaction keeps
leaf bodies only), local documents (revisions "0-N", never in _changes or _all_docs).
"""

from __future__ import annotations

from typing import Any

from carecouch.couch import Database
from tests.helpers.protocol import MISSING, call, replicated, rev_hash
from tests.helpers.waiting import wait_until


def open_revs(db: Database, doc_id: str, wanted: list[str] | str,
              **params: Any) -> list[dict[str, Any]]:
    """GET ?open_revs=... as JSON (Database.open_revs cannot also pass `revs=true`)."""
    status, body = call(db.client, "GET", f"{db.path}/{doc_id}",
                        params={"open_revs": wanted, **params},
                        headers={"Accept": "application/json"})
    assert status == 200, body
    assert isinstance(body, list)
    return body


def conflicted(db: Database) -> dict[str, str]:
    """d: 1-a -> 2-b, 1-a -> 2-c -> 3-x (deleted), 1-a -> 2-e; returns the revs by letter."""
    a, b, c, x, e = (rev_hash() for _ in range(5))
    b, e = sorted([b, e])  # 2-e has the higher id: it wins over 2-b
    db.bulk_docs([
        replicated("d", 1, [a], v="a"),
        replicated("d", 2, [b, a], v="b"),
        replicated("d", 2, [c, a], v="c"),
        replicated("d", 3, [x, c, a], _deleted=True),
        replicated("d", 2, [e, a], v="e"),
    ], new_edits=False)
    return {"a": f"1-{a}", "b": f"2-{b}", "c": f"2-{c}", "x": f"3-{x}", "e": f"2-{e}"}


# -- winner, _conflicts, _deleted_conflicts ---------------------------------------------------

def test_winner_prefers_live_over_deleted_then_longer_then_higher_id(db: Database) -> None:
    # couch_doc:to_doc_info/1 sorts leaves {not deleted, pos, rev id} descending
    r = conflicted(db)
    # 3-x is longest but deleted; 2-e and 2-b are live: 2-e has the higher id.
    assert db.get("d")["_rev"] == r["e"]
    assert db.all_docs()["rows"][0]["value"]["rev"] == r["e"]


def test_longer_live_branch_wins(db: Database) -> None:
    # couch_doc:to_doc_info/1: among live leaves the longest wins
    a, low, high, deep = rev_hash(), *sorted([rev_hash(), rev_hash()]), rev_hash()
    db.bulk_docs([replicated("d", 1, [a]), replicated("d", 2, [high, a]),
                  replicated("d", 2, [low, a]), replicated("d", 3, [deep, low, a])],
                 new_edits=False)
    assert db.get("d")["_rev"] == f"3-{deep}"


def test_conflicts_and_deleted_conflicts(db: Database) -> None:
    # open_doc_int/3: _conflicts = other live leaves, _deleted_conflicts = deleted leaves
    r = conflicted(db)
    doc = db.get("d", conflicts=True, deleted_conflicts=True)
    assert doc["_rev"] == r["e"]
    assert doc["_conflicts"] == [r["b"]]
    assert doc["_deleted_conflicts"] == [r["x"]]


def test_conflicts_absent_when_none(db: Database) -> None:
    # couch_db:open_doc_int/3 adds the fields only when non-empty
    db.put({"_id": "d"})
    doc = db.get("d", conflicts=True, deleted_conflicts=True)
    assert "_conflicts" not in doc and "_deleted_conflicts" not in doc


def test_view_sees_conflicts(db: Database) -> None:
    # couch_mrview_updater opens documents with `conflicts` for map functions
    r = conflicted(db)
    db.put({"_id": "_design/c", "views": {"conflicts": {
        "map": "function (doc) { if (doc._conflicts) { emit(doc._id, doc._conflicts); } }"}}})
    rows = db.view("c", "conflicts")["rows"]
    assert rows == [{"id": "d", "key": "d", "value": [r["b"]]}]


# -- open_revs ------------------------------------------------------------------------------------

def test_open_revs_all_returns_every_leaf_with_history(db: Database) -> None:
    # chttpd_db:db_doc_req/3 open_revs=all -> every leaf, deleted ones too
    r = conflicted(db)
    found = open_revs(db, "d", "all", revs=True)
    by_rev = {entry["ok"]["_rev"]: entry["ok"] for entry in found}
    assert set(by_rev) == {r["b"], r["e"], r["x"]}
    assert by_rev[r["x"]]["_deleted"] is True
    assert by_rev[r["x"]]["_revisions"] == {
        "start": 3, "ids": [r["x"][2:], r["c"][2:], r["a"][2:]]}
    assert by_rev[r["b"]]["v"] == "b"


def test_open_revs_list_reports_missing_revisions(db: Database) -> None:
    # chttpd_db:db_doc_req/3: {{not_found, missing}, Rev} -> {"missing": rev}
    r = conflicted(db)
    unknown = "2-" + rev_hash()
    found = open_revs(db, "d", [r["b"], unknown], revs=True)
    assert {"missing": unknown} in found
    oks = [entry["ok"] for entry in found if "ok" in entry]
    assert [doc["_rev"] for doc in oks] == [r["b"]]
    assert oks[0]["_revisions"]["ids"] == [r["b"][2:], r["a"][2:]]


def test_open_revs_latest_returns_every_leaf_below(db: Database) -> None:
    # couch_db:open_doc_revs_int/3 with `latest` -> couch_key_tree:get_key_leafs/2
    r = conflicted(db)
    found = open_revs(db, "d", [r["a"]], latest=True)
    assert {entry["ok"]["_rev"] for entry in found} == {r["b"], r["e"], r["x"]}
    found = open_revs(db, "d", [r["c"]], latest=True)
    assert [entry["ok"]["_rev"] for entry in found] == [r["x"]]


# -- _revs_diff -----------------------------------------------------------------------------------

def test_revs_diff_missing_and_possible_ancestors(db: Database) -> None:
    # find_missing/2: possible ancestors are the leaves with a lower position than a missing rev
    r = conflicted(db)
    new3, new5 = "3-" + rev_hash(), "5-" + rev_hash()
    diff = db.revs_diff({"d": [r["a"], r["b"], new3, new5], "gone": ["1-" + rev_hash()]})
    assert set(diff) == {"d", "gone"}
    assert sorted(diff["d"]["missing"]) == sorted([new3, new5])
    assert sorted(diff["d"]["possible_ancestors"]) == sorted([r["b"], r["e"], r["x"]])
    assert "possible_ancestors" not in diff["gone"]


def test_revs_diff_possible_ancestors_only_below_missing(db: Database) -> None:
    # couch_db:find_missing/2: a leaf must be lower than a missing rev
    conflicted(db)
    new2 = "2-" + rev_hash()
    diff = db.revs_diff({"d": [new2]})
    assert diff == {"d": {"missing": [new2]}}  # no leaf has a position below 2


def test_revs_diff_omits_documents_with_nothing_missing(db: Database) -> None:
    # couch_db:find_missing/2 skips documents whose revisions are all known
    r = conflicted(db)
    assert db.revs_diff({"d": [r["a"], r["e"], r["x"]]}) == {}


def test_revs_diff_compacted_revision_is_not_missing(db: Database) -> None:
    # couch_key_tree:find_missing/2 looks at the tree, not at the bodies compaction removed
    a, b = rev_hash(), rev_hash()
    db.bulk_docs([replicated("d", 1, [a]), replicated("d", 2, [b, a])], new_edits=False)
    db.compact()
    wait_until(lambda: db.get_or_none("d", rev=f"1-{a}") is None, what="compaction ran")
    assert db.revs_diff({"d": [f"1-{a}", f"2-{b}"]}) == {}


# -- _bulk_get ------------------------------------------------------------------------------------

def docs_of(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [entry["ok"] for entry in result["docs"] if "ok" in entry]


def test_bulk_get_with_revs(db: Database) -> None:
    # chttpd_db:bulk_get_ret_json/4 with `revs=true`: `_revisions` in each doc
    r = conflicted(db)
    results = db.bulk_get([{"id": "d", "rev": r["b"]}], revs=True)
    assert len(results) == 1 and results[0]["id"] == "d"
    (doc,) = docs_of(results[0])
    assert doc["_rev"] == r["b"] and doc["v"] == "b"
    assert doc["_revisions"] == {"start": 2, "ids": [r["b"][2:], r["a"][2:]]}


def test_bulk_get_without_rev_returns_every_leaf(db: Database) -> None:
    # bulk_get_parse_revs/2: no rev -> open_revs = all
    r = conflicted(db)
    (result,) = db.bulk_get([{"id": "d"}])
    assert {doc["_rev"] for doc in docs_of(result)} == {r["b"], r["e"], r["x"]}


def test_bulk_get_latest_returns_leaves_below(db: Database) -> None:
    # bulk_get_docs/3 -> fabric:open_revs with `latest` (couch_key_tree:get_key_leafs/2)
    r = conflicted(db)
    (result,) = db.bulk_get([{"id": "d", "rev": r["a"]}], revs=True, latest=True)
    assert {doc["_rev"] for doc in docs_of(result)} == {r["b"], r["e"], r["x"]}
    assert all("_revisions" in doc for doc in docs_of(result))


def test_bulk_get_keeps_request_order_and_reports_errors(db: Database) -> None:
    # bulk_get_parse_args/2 keeps order; bulk_get_json_error_map/4, bulk_get_rev_error/1
    r = conflicted(db)
    unknown = "9-" + rev_hash()
    results = db.bulk_get([{"id": "d", "rev": r["e"]}, {"id": "nope"}, {"id": "d", "rev": unknown},
                           {"id": "d", "rev": r["b"]}])
    assert [res["id"] for res in results] == ["d", "nope", "d", "d"]
    assert [doc["_rev"] for doc in docs_of(results[0])] == [r["e"]]
    assert results[1]["docs"] == [{"error": {"id": "nope", "rev": "undefined",
                                             "error": "not_found", "reason": "missing"}}]
    assert results[2]["docs"] == [{"error": {"id": "d", "rev": unknown,
                                             "error": "not_found", "reason": "missing"}}]
    assert [doc["_rev"] for doc in docs_of(results[3])] == [r["b"]]


# -- compaction -----------------------------------------------------------------------------------

def test_compaction_removes_non_leaf_bodies_and_keeps_leaves(db: Database) -> None:
    # couch_bt_engine_compactor: branch -> ?REV_MISSING; open_doc_revs_int -> not_found missing
    r = conflicted(db)
    assert db.get("d", rev=r["a"])["v"] == "a"
    assert call(db.client, "POST", f"{db.path}/_compact", body={}) == (202, {"ok": True})
    wait_until(lambda: db.get_or_none("d", rev=r["a"]) is None, what="compaction ran")
    assert call(db.client, "GET", f"{db.path}/d", params={"rev": r["a"]}) == (404, MISSING)
    assert call(db.client, "GET", f"{db.path}/d", params={"rev": r["c"]}) == (404, MISSING)
    assert db.get("d", rev=r["b"])["v"] == "b"
    assert db.get("d", rev=r["e"])["v"] == "e"
    assert db.get("d", rev=r["x"])["_deleted"] is True
    found = open_revs(db, "d", [r["a"]])
    assert found == [{"missing": r["a"]}]


# -- _local documents -----------------------------------------------------------------------------

def test_local_documents_have_no_history_and_stay_out_of_feeds(db: Database) -> None:
    # couch_db local docs: revisions "0-N", not in the by-seq or by-id trees
    first = db.put_local("cp", {"last_seq": "1"})
    assert first == {"ok": True, "id": "_local/cp", "rev": "0-1"}
    second = db.put_local("cp", {"_rev": "0-1", "last_seq": "2"})
    assert second["rev"] == "0-2"
    assert db.get_local("cp") == {"_id": "_local/cp", "_rev": "0-2", "last_seq": "2"}
    db.put({"_id": "plain"})
    assert [row["id"] for row in db.all_docs()["rows"]] == ["plain"]
    assert [change["id"] for change in db.changes()["results"]] == ["plain"]
    assert db.info()["doc_count"] == 1
