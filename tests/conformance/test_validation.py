"""validate_doc_update as CouchDB 3.5 runs it, for interactive and replicated (new_edits=false)
writes.

CouchDB references (apache/couchdb src/couch/src/couch_db.erl unless noted):
validate_doc_update/3, prep_and_validate_update/5 (interactive), prep_and_validate_replicated_
updates/5 and make_first_doc_on_disk/4 (replicated), couch_util:json_user_ctx/1 (userCtx),
couch_query_servers:validate_doc_update/5 (forbidden/unauthorized), chttpd_db:update_doc_result_
to_json/1,2 (the _bulk_docs answer).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from carecouch.couch import Database
from tests.helpers.fixtures import User
from tests.helpers.protocol import (
    call,
    put_validator,
    reason_json,
    replicated,
    rev_hash,
)
from tests.helpers.waiting import wait_until

ACCEPT_ALL = "function (newDoc, oldDoc, userCtx, secObj) {}"
REFUSE_ALL = "function (newDoc, oldDoc, userCtx, secObj) { throw({forbidden: 'no writes'}); }"

# Refuses a document whose `expect_old` is not the _rev of oldDoc (null for no oldDoc), saying
# what it saw; with `probe`, refuses with everything it was given.
EXPECT_OLD = """function (newDoc, oldDoc, userCtx, secObj) {
  if (newDoc.probe) {
    throw({forbidden: JSON.stringify({newDoc: newDoc, oldDoc: oldDoc, userCtx: userCtx,
                                      secObj: secObj})});
  }
  if (newDoc.hasOwnProperty('expect_old')) {
    var seen = oldDoc ? oldDoc._rev : null;
    if (seen !== newDoc.expect_old) {
      throw({forbidden: 'oldDoc was ' + seen});
    }
  }
}"""


def open_revs(db: Database, doc_id: str) -> set[str]:
    return {entry["ok"]["_rev"] for entry in db.open_revs(doc_id) if "ok" in entry}


# -- defect 1: replicated writes are stored while a validate_doc_update exists -----------------

def test_replicated_history_is_stored_with_a_validator(db: Database) -> None:
    # couch_db:update_docs/4 (replicated_changes): the incoming _revisions is the history stored.
    put_validator(db, ACCEPT_ALL)
    a, b = rev_hash(), rev_hash()
    assert db.bulk_docs([replicated("d", 1, [a], v=1)], new_edits=False) == []
    assert db.bulk_docs([replicated("d", 2, [b, a], v=2)], new_edits=False) == []
    doc = db.get("d", revs=True)
    assert doc["_rev"] == f"2-{b}"
    assert doc["_revisions"] == {"start": 2, "ids": [b, a]}
    assert doc["v"] == 2
    assert open_revs(db, "d") == {f"2-{b}"}


def test_replicated_batch_with_history_is_stored(db: Database) -> None:
    # couch_key_tree:multi_merge/2 of every incoming path of the request
    put_validator(db, ACCEPT_ALL)
    a, b, c = rev_hash(), rev_hash(), rev_hash()
    docs = [replicated("d", 1, [a]), replicated("d", 2, [b, a]), replicated("d", 3, [c, b, a])]
    assert db.bulk_docs(docs, new_edits=False) == []
    assert db.get("d", revs=True)["_revisions"] == {"start": 3, "ids": [c, b, a]}


def test_replicated_write_refused_by_validator(db: Database) -> None:
    # prep_and_validate_replicated_updates/5 + update_doc_result_to_json/1: only the failures,
    # each with id and rev.
    put_validator(db, REFUSE_ALL)
    a = rev_hash()
    result = db.bulk_docs([replicated("d", 1, [a])], new_edits=False)
    assert result == [{"id": "d", "rev": f"1-{a}", "error": "forbidden", "reason": "no writes"}]
    assert db.get_or_none("d") is None


# -- defect 2: oldDoc for a replicated write ----------------------------------------------------

def test_replicated_new_document_sees_null_old_doc(db: Database) -> None:
    # prep_and_validate_replicated_updates/5: not_found -> validate against nil
    put_validator(db, EXPECT_OLD)
    a = rev_hash()
    assert db.bulk_docs([replicated("d", 1, [a], expect_old=None)], new_edits=False) == []
    assert db.get("d")["_rev"] == f"1-{a}"


def test_replicated_old_doc_is_parent_on_incoming_branch_not_winner(db: Database) -> None:
    # make_first_doc_on_disk/4 walks the incoming path: 1-a, not the winner 2-b.
    a, b, c = rev_hash(), rev_hash(), rev_hash()
    db.bulk_docs([replicated("d", 1, [a]), replicated("d", 2, [b, a])], new_edits=False)
    put_validator(db, EXPECT_OLD)
    result = db.bulk_docs([replicated("d", 2, [c, a], expect_old=f"1-{a}")], new_edits=False)
    assert result == []
    assert open_revs(db, "d") == {f"2-{b}", f"2-{c}"}


def test_replicated_old_doc_is_the_stored_parent(db: Database) -> None:
    # make_first_doc_on_disk/4: the first stored revision on the path
    a, b, c = rev_hash(), rev_hash(), rev_hash()
    db.bulk_docs([replicated("d", 1, [a]), replicated("d", 2, [b, a])], new_edits=False)
    put_validator(db, EXPECT_OLD)
    result = db.bulk_docs([replicated("d", 3, [c, b, a], expect_old=f"2-{b}")], new_edits=False)
    assert result == []
    assert open_revs(db, "d") == {f"3-{c}"}


def test_replicated_old_doc_skips_revisions_never_stored(db: Database) -> None:
    # A _revisions entry the database never had is skipped; the walk goes on to 1-a.
    a, unknown, c = rev_hash(), rev_hash(), rev_hash()
    db.bulk_docs([replicated("d", 1, [a])], new_edits=False)
    put_validator(db, EXPECT_OLD)
    doc = replicated("d", 3, [c, unknown, a], expect_old=f"1-{a}")
    assert db.bulk_docs([doc], new_edits=False) == []
    stored = db.get("d", revs=True)
    assert stored["_rev"] == f"3-{c}"
    assert stored["_revisions"] == {"start": 3, "ids": [c, unknown, a]}


def test_replicated_old_doc_is_null_when_compaction_removed_the_ancestors(
        db: Database) -> None:
    # couch_bt_engine_compactor keeps only leaf bodies (branch -> ?REV_MISSING), and
    # make_first_doc_on_disk/4 skips ?REV_MISSING: nothing stored is left on the branch.
    a, b, c, x = rev_hash(), rev_hash(), rev_hash(), rev_hash()
    db.bulk_docs([replicated("d", 1, [a]), replicated("d", 2, [b, a]),
                  replicated("d", 3, [c, b, a])], new_edits=False)
    db.compact()
    wait_until(lambda: db.get_or_none("d", rev=f"2-{b}") is None, what="compaction ran")
    put_validator(db, EXPECT_OLD)
    result = db.bulk_docs([replicated("d", 3, [x, b, a], expect_old=None)], new_edits=False)
    assert result == []
    assert open_revs(db, "d") == {f"3-{c}", f"3-{x}"}


def test_replicated_revision_already_stored_is_not_validated(db: Database) -> None:
    # "this doc isn't a leaf or already exists in the tree. ignore but consider it a success."
    a, b = rev_hash(), rev_hash()
    docs = [replicated("d", 1, [a], v=1), replicated("d", 2, [b, a], v=2)]
    db.bulk_docs(docs, new_edits=False)
    put_validator(db, REFUSE_ALL)
    assert db.bulk_docs(docs, new_edits=False) == []


def test_replicated_new_doc_keeps_its_own_revisions(db: Database) -> None:
    # couch_query_servers:validate_doc_update/5 gets couch_doc:to_json_obj(Doc, [revs])
    put_validator(db, EXPECT_OLD)
    a, b, c = rev_hash(), rev_hash(), rev_hash()
    db.bulk_docs([replicated("d", 1, [a]), replicated("d", 2, [b, a])], new_edits=False)
    status, body = call(db.client, "POST", f"{db.path}/_bulk_docs", body={
        "new_edits": False, "docs": [replicated("d", 3, [c, b, a], probe=True)]})
    assert status == 201
    assert len(body) == 1 and body[0]["error"] == "forbidden"
    seen = reason_json(body[0])
    assert seen["newDoc"]["_revisions"] == {"start": 3, "ids": [c, b, a]}
    assert seen["newDoc"]["_rev"] == f"3-{c}"
    assert seen["oldDoc"]["_rev"] == f"2-{b}"
    assert seen["oldDoc"]["_revisions"] == {"start": 2, "ids": [b, a]}


# -- interactive writes keep their semantics ----------------------------------------------------

def test_interactive_old_doc_is_the_revision_being_updated(db: Database) -> None:
    # prep_and_validate_update/5: the leaf named by _rev, even when it is not the winner.
    a, b, c = rev_hash(), rev_hash(), rev_hash()
    low, high = sorted([b, c])
    db.bulk_docs([replicated("d", 1, [a]), replicated("d", 2, [low, a]),
                  replicated("d", 2, [high, a])], new_edits=False)
    assert db.get("d")["_rev"] == f"2-{high}"
    put_validator(db, EXPECT_OLD)
    result = db.put({"_id": "d", "_rev": f"2-{low}", "expect_old": f"2-{low}"})
    assert result["ok"] is True and result["rev"].startswith("3-")


def test_interactive_new_document_sees_null_old_doc(db: Database) -> None:
    # prep_and_validate_updates/6: not_found -> validate against nil
    put_validator(db, EXPECT_OLD)
    assert db.put({"_id": "d", "expect_old": None})["ok"] is True


def test_interactive_recreating_a_deleted_document_sees_null_old_doc(db: Database) -> None:
    # prep_and_validate_update/5: no _rev on a deleted document -> validate against nil.
    rev = db.put({"_id": "d"})["rev"]
    db.delete("d", rev)
    put_validator(db, EXPECT_OLD)
    assert db.put({"_id": "d", "expect_old": None})["ok"] is True


def test_interactive_new_doc_carries_the_edited_rev(db: Database) -> None:
    # couch_doc:to_json_obj(Doc, [revs]) before the new revision id exists: the edited rev
    # only (couch_doc:from_json_obj/1 reads `_rev` as {Pos, [RevId]}), not its history.
    first = db.put({"_id": "d"})["rev"]
    rev = db.put({"_id": "d", "_rev": first})["rev"]
    put_validator(db, EXPECT_OLD)
    status, body = call(db.client, "PUT", f"{db.path}/d", body={"_rev": rev, "probe": True})
    assert status == 403
    seen = reason_json(body)
    pos, rev_id = rev.split("-")
    assert seen["newDoc"]["_rev"] == rev
    assert seen["newDoc"]["_revisions"] == {"start": int(pos), "ids": [rev_id]}
    assert seen["oldDoc"]["_rev"] == rev
    assert seen["oldDoc"]["_id"] == "d"
    assert seen["oldDoc"]["_revisions"] == {"start": 2, "ids": [rev_id, first.split("-")[1]]}


# -- the arguments and the error mapping ----------------------------------------------------------

def test_validator_receives_user_ctx_and_sec_obj(make_db: Callable[..., Database],
                                                 make_user: Callable[..., User]) -> None:
    # couch_util:json_user_ctx/1 {db, name, roles}; couch_db:get_security/1 as secObj.
    security = {"members": {"roles": ["ward-1"]}, "admins": {"roles": ["ward-1-admin"]},
                "custom": {"note": 1}}
    db = make_db(security=security)
    put_validator(db, EXPECT_OLD)
    user = make_user(roles=["ward-1"])
    status, body = call(user.client, "PUT", f"{db.path}/d", body={"probe": True})
    assert status == 403
    seen = reason_json(body)
    assert seen["userCtx"] == {"db": db.name, "name": user.name, "roles": ["ward-1"]}
    assert seen["secObj"] == security
    assert seen["oldDoc"] is None
    assert seen["newDoc"]["_id"] == "d" and seen["newDoc"]["probe"] is True
    # The same for a replicated write: the record rules read the caseload from userCtx.db
    # (couch_util:json_user_ctx/1 gives the database's name, mem3:dbname/1 of the shard's).
    status, body = call(user.client, "POST", f"{db.path}/_bulk_docs", body={
        "new_edits": False, "docs": [replicated("r", 1, [rev_hash()], probe=True)]})
    assert status == 201
    assert reason_json(body[0])["userCtx"]["db"] == db.name


def test_forbidden_from_put_is_403(db: Database) -> None:
    # couch_query_servers:validate_doc_update/5: {forbidden, Msg}
    put_validator(db, REFUSE_ALL)
    assert call(db.client, "PUT", f"{db.path}/d", body={"a": 1}) == (
        403, {"error": "forbidden", "reason": "no writes"})


def test_unauthorized_from_validator_is_401(db: Database) -> None:
    # couch_query_servers:validate_doc_update/5: {unauthorized, Msg}
    put_validator(db, "function (n, o, u, s) { throw({unauthorized: 'log in first'}); }")
    assert call(db.client, "PUT", f"{db.path}/d", body={"a": 1}) == (
        401, {"error": "unauthorized", "reason": "log in first"})


def test_bulk_docs_reports_each_refusal_in_order(db: Database) -> None:
    # chttpd_db: lists:zipwith(update_doc_result_to_json/2, Docs, Results)
    put_validator(db, "function (n, o, u, s) {"
                      " if (n.bad) { throw({forbidden: 'bad ' + n._id}); } }")
    result = db.bulk_docs([{"_id": "a"}, {"_id": "b", "bad": True}, {"_id": "c"}])
    assert [r.get("id") for r in result] == ["a", "b", "c"]
    assert result[0]["ok"] is True and result[2]["ok"] is True
    assert result[1] == {"id": "b", "error": "forbidden", "reason": "bad b"}
    assert db.get_or_none("b") is None and db.get_or_none("c") is not None


def test_local_documents_are_not_validated(db: Database) -> None:
    # validate_doc_update/3: `_local/` documents skip validation (replication checkpoints).
    put_validator(db, REFUSE_ALL)
    assert db.put_local("checkpoint", {"last_seq": "1"})["ok"] is True


def test_design_documents_are_not_passed_to_validators(db: Database) -> None:
    # validate_doc_update/3 for `_design/`: check_is_admin + validate_ddoc only.
    put_validator(db, REFUSE_ALL)
    assert db.put({"_id": "_design/other", "views": {}})["ok"] is True


def test_validators_reload_when_a_design_document_changes(db: Database) -> None:
    # couch_db:load_validation_funs/1 is reloaded when a design doc changes
    rev = put_validator(db, REFUSE_ALL)
    assert call(db.client, "PUT", f"{db.path}/d", body={})[0] == 403
    db.put({"_id": "_design/rules", "_rev": rev, "validate_doc_update": ACCEPT_ALL})
    assert db.put({"_id": "d"})["ok"] is True
    put_validator(db, REFUSE_ALL, name="more")
    assert call(db.client, "PUT", f"{db.path}/e", body={})[0] == 403


def test_ten_thousand_replicated_documents_with_a_validator(db: Database) -> None:
    # One _bulk_docs of 10,000 (CouchDB's default max_bulk_docs_count) beside a large design
    # document (carecouch's carries the record-type registry and its modules) must stay fast:
    # CouchDB loads the validation functions once (couch_db:load_validation_funs/1), not once
    # per document. (pouchdb-validation re-read and re-evaluated the design documents for every
    # document: minutes, or the server ran out of memory.)
    registry = {f"type{i}": {"required": {f"field{j}": "string" for j in range(20)}}
                for i in range(2400)}
    db.put({"_id": "_design/rules",
            "lib": {"registry": f"module.exports = {json.dumps(registry)};"},
            "validate_doc_update":
                "function (n, o, u, s) { if (!n.kind) { throw({forbidden: 'kind'}); } }"})
    first = [replicated(f"doc-{i:05d}", 1, [rev_hash()], kind="obs") for i in range(10_000)]
    second = [replicated(doc["_id"], 2, [rev_hash(), doc["_revisions"]["ids"][0]], kind="obs")
              for doc in first]
    started = time.monotonic()
    assert db.bulk_docs(first, new_edits=False) == []
    assert db.bulk_docs(second, new_edits=False) == []
    elapsed = time.monotonic() - started
    assert db.info()["doc_count"] == 10_001  # doc_count includes the design document
    assert db.get("doc-04321")["_rev"] == second[4321]["_rev"]
    assert elapsed < 120, f"20,000 validated revisions took {elapsed:.1f}s"


# -- how functions and their CommonJS modules are compiled (share/server/util.js) --------------

def test_function_source_may_open_with_a_comment(db: Database) -> None:
    # Couch.compileFunction evaluates the source as an expression: a leading comment is fine.
    put_validator(db, "// refuses everything\n" + REFUSE_ALL)
    status, body = call(db.client, "PUT", f"{db.path}/x", body={"v": 1})
    assert (status, body["reason"]) == (403, "no writes")


def test_modules_resolve_absolute_and_relative_paths(db: Database) -> None:
    # resolveModule: absolute names from the design document, "./" from the requiring
    # module's parent object (lib/rules requires ./limits, which is lib/limits).
    db.put({"_id": "_design/rules",
            "lib": {"limits": "exports.max = 3;",
                    "rules": "var limits = require('./limits');\n"
                             "exports.check = function (doc) {\n"
                             "  if (doc.n > limits.max) {\n"
                             "    throw({forbidden: 'n > ' + limits.max});\n"
                             "  }\n"
                             "};"},
            "validate_doc_update": "function (newDoc) { require('lib/rules').check(newDoc); }"})
    assert call(db.client, "PUT", f"{db.path}/small", body={"n": 3})[0] == 201
    status, body = call(db.client, "PUT", f"{db.path}/big", body={"n": 4})
    assert (status, body["reason"]) == (403, "n > 3")
