"""Document reads and writes: the answers carecouch's client maps to its errors.

CouchDB references: chttpd:error_info/1 (`conflict` -> 409 "Document update conflict.",
`{not_found, deleted}`), chttpd_db:db_doc_req/3 and update_doc/4 (PUT, DELETE,
`new_edits=false`), chttpd_db:update_doc_result_to_json/2 (_bulk_docs items),
couch_db:update_doc/4 (a replicated write answers with its own revision).
"""

from __future__ import annotations

from carecouch.couch import Database
from tests.helpers.protocol import MISSING, call, put_validator, replicated, rev_hash

CONFLICT = {"error": "conflict", "reason": "Document update conflict."}


def test_stale_revision_is_a_conflict(db: Database) -> None:
    # couch_db:prep_and_validate_update/5 -> conflict; chttpd:error_info(conflict)
    first = db.put({"_id": "d", "v": 1})["rev"]
    db.put({"_id": "d", "_rev": first, "v": 2})
    assert call(db.client, "PUT", f"{db.path}/d", body={"_rev": first, "v": 3}) == (
        409, CONFLICT)
    assert call(db.client, "PUT", f"{db.path}/d", body={"v": 3}) == (409, CONFLICT)
    assert call(db.client, "DELETE", f"{db.path}/d", params={"rev": first}) == (409, CONFLICT)
    result = db.bulk_docs([{"_id": "d", "_rev": first}, {"_id": "e"}])
    assert result[0] == {"id": "d", **CONFLICT}
    assert result[1]["ok"] is True


def test_deleted_document_reads_as_deleted(db: Database) -> None:
    # fabric:open_doc/3 -> {not_found, deleted}; open_revs returns the stub
    rev = db.put({"_id": "d"})["rev"]
    deleted = db.delete("d", rev)
    assert deleted["ok"] is True and deleted["rev"].startswith("2-")
    assert call(db.client, "GET", f"{db.path}/d") == (
        404, {"error": "not_found", "reason": "deleted"})
    assert call(db.client, "GET", f"{db.path}/never") == (404, MISSING)
    stub = db.get("d", rev=deleted["rev"])
    assert stub == {"_id": "d", "_rev": deleted["rev"], "_deleted": True}


def test_put_with_new_edits_false_answers_the_incoming_revision(db: Database) -> None:
    # fabric:update_doc/3: `{ok, []}` (replication success) -> the doc's own rev
    a, b = rev_hash(), rev_hash()
    status, body = call(db.client, "PUT", f"{db.path}/d", params={"new_edits": False},
                        body={"_rev": f"1-{a}", "v": 1})
    assert (status, body) == (201, {"ok": True, "id": "d", "rev": f"1-{a}"})
    status, body = call(db.client, "PUT", f"{db.path}/d", params={"new_edits": False},
                        body=replicated("d", 2, [b, a], v=2))
    assert (status, body) == (201, {"ok": True, "id": "d", "rev": f"2-{b}"})
    assert db.get("d", revs=True)["_revisions"] == {"start": 2, "ids": [b, a]}


def test_put_with_new_edits_false_refused_by_validator(db: Database) -> None:
    # fabric:update_doc/3 throws the validation error: 403
    put_validator(db, "function (n, o, u, s) { throw({forbidden: 'read only'}); }")
    status, body = call(db.client, "PUT", f"{db.path}/d", params={"new_edits": False},
                        body={"_rev": f"1-{rev_hash()}"})
    assert (status, body) == (403, {"error": "forbidden", "reason": "read only"})
    assert db.get_or_none("d") is None


def test_a_deleted_document_is_recreated_only_without_a_revision(db: Database) -> None:
    # couch_db_updater:merge_rev_tree/4: when the winner is deleted, an interactive edit must
    # be a re-creation from the root (no _rev, not a deletion); it then grows from the
    # winning tombstone. Any edit naming a revision, the tombstone's included, is a conflict.
    first = db.put({"_id": "d", "v": 1})["rev"]
    tomb = db.delete("d", first)["rev"]
    for body in ({"_rev": tomb, "v": 2}, {"_rev": first, "v": 2}):
        assert call(db.client, "PUT", f"{db.path}/d", body=body) == (409, CONFLICT)
    (item,) = db.bulk_docs([{"_id": "d", "_rev": tomb, "v": 2}])
    assert item == {"id": "d", **CONFLICT}
    assert call(db.client, "DELETE", f"{db.path}/d", params={"rev": tomb}) == (409, CONFLICT)
    again = db.put({"_id": "d", "v": 3})["rev"]
    assert again.startswith("3-")  # grown from the tombstone (2-)
    assert db.get("d", revs=True)["_revisions"]["ids"][1:] == [tomb[2:], first[2:]]


def test_a_validator_sees_no_old_document_when_a_deleted_one_is_recreated(
        db: Database) -> None:
    # couch_db:prep_and_validate_update/5 with no revision on a deleted document: oldDoc null.
    rev = db.put({"_id": "d", "v": 1})["rev"]
    db.delete("d", rev)
    put_validator(db, "function (n, o) { if (n.v === 2) { throw({forbidden: "
                      "JSON.stringify(o)}); } }")
    assert call(db.client, "PUT", f"{db.path}/d", body={"v": 2}) == (
        403, {"error": "forbidden", "reason": "null"})


def test_database_info_has_couchdbs_fields(db: Database) -> None:
    # chttpd_db:db_req/2 (GET /db) -> fabric:get_db_info/1; what carecouch reads from it:
    # doc_count, update_seq (opaque), sizes.file (caseload list), cluster.n (copies)
    db.put({"_id": "d"})
    info = db.info()
    assert info["db_name"] == db.name and info["doc_count"] == 1
    assert isinstance(info["sizes"]["file"], int) and info["sizes"]["file"] > 0
    assert isinstance(info["cluster"]["n"], int) and info["cluster"]["n"] >= 1
    assert info["instance_start_time"] == "0"
    assert "disk_size" not in info and "update_seq" in info
