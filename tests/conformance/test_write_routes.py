"""Every HTTP route that writes a document is validated as the user who sent it.

CouchDB passes the request's user_ctx to every update (chttpd_db:db_doc_req/3 for PUT, POST,
DELETE and COPY, db_attachment_req/4 for attachment PUT and DELETE, db_req/2 for `POST /{db}`
and `_bulk_docs`, chttpd_show:handle_doc_update_req/3 for `_update`), and
couch_db:validate_doc_update/3 hands it to every validate_doc_update function; design
documents need a db admin whatever the route. Issue 10, attack 4: the embedded server
validated attachment writes (and `_update`) as the server admin.

Each route is tried by the record's owner (accepted) and by another member (refused by a
validation function that names the writer it was given).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from carecouch.couch import CouchClient, Database
from tests.helpers.fixtures import User
from tests.helpers.protocol import call, call_raw, put_validator, reason_json

ROLE = "caseload:routes"
NOT_DB_ADMIN = {"error": "forbidden", "reason": "You are not a db or server admin."}

# Refuses any revision not written by the record's owner (oldDoc's, or newDoc's for a new
# record), naming the writer it saw; an update of a `probe_atts` record is refused with the
# attachments it was given.
OWNER_ONLY = """function (newDoc, oldDoc, userCtx) {
  if (newDoc.probe_atts && oldDoc) {
    throw({forbidden: JSON.stringify({newDoc: newDoc._attachments || null,
                                      oldDoc: oldDoc._attachments || null})});
  }
  var owner = oldDoc ? oldDoc.owner : newDoc.owner;
  if (userCtx.name !== owner) {
    throw({forbidden: 'written by ' + userCtx.name + ', owned by ' + owner});
  }
}"""

UPDATES = {"touch": "function (doc, req) { doc.touched = true; return [doc, 'touched']; }"}


@dataclass
class Ward:
    db: Database
    owner: User
    other: User

    def record(self, **body: Any) -> tuple[str, str]:
        """A record of `owner`, with a text attachment; returns (id, rev)."""
        doc_id = f"obs:{uuid.uuid4().hex}"
        doc = {"_id": doc_id, "owner": self.owner.name, "type": "obs",
               "_attachments": {"note.txt": {"content_type": "text/plain",
                                             "data": base64.b64encode(b"first").decode()}},
               **body}
        return doc_id, str(self.owner.client.db(self.db.name).put(doc)["rev"])


@pytest.fixture
def ward(make_db: Callable[..., Database], make_user: Callable[..., User]) -> Ward:
    db = make_db(security={"members": {"roles": [ROLE]}, "admins": {"roles": []}})
    put_validator(db, OWNER_ONLY)
    db.put({"_id": "_design/app", "updates": UPDATES})
    return Ward(db, make_user(roles=[ROLE]), make_user(roles=[ROLE]))


def history(db: Database, doc_id: str) -> list[str]:
    revisions = db.get(doc_id, revs=True)["_revisions"]
    return [str(rev_id) for rev_id in revisions["ids"]]


def multipart(boundary: str, parts: list[tuple[dict[str, str], bytes]]) -> bytes:
    out = b""
    for headers, body in parts:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        out += f"--{boundary}\r\n{head}\r\n".encode() + body + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


# Each route: (ward, writer's client, record id, its rev) -> (status, answer body).
Route = Callable[[Ward, CouchClient, str, str], tuple[int, Any]]


def put_document(w: Ward, c: CouchClient, doc_id: str, rev: str) -> tuple[int, Any]:
    doc = w.db.get(doc_id)
    return call(c, "PUT", f"{w.db.path}/{doc_id}", body={**doc, "v": 2})


def post_document(w: Ward, c: CouchClient, doc_id: str, rev: str) -> tuple[int, Any]:
    return call(c, "POST", w.db.path, body={**w.db.get(doc_id), "v": 2})


def delete_document(w: Ward, c: CouchClient, doc_id: str, rev: str) -> tuple[int, Any]:
    return call(c, "DELETE", f"{w.db.path}/{doc_id}", params={"rev": rev})


def copy_document(w: Ward, c: CouchClient, doc_id: str, rev: str) -> tuple[int, Any]:
    return call(c, "COPY", f"{w.db.path}/{doc_id}",
                headers={"Destination": f"copy-{uuid.uuid4().hex}"})


def bulk_docs(w: Ward, c: CouchClient, doc_id: str, rev: str) -> tuple[int, Any]:
    return call(c, "POST", f"{w.db.path}/_bulk_docs",
                body={"docs": [{**w.db.get(doc_id), "v": 2}]})


def replicated_child(w: Ward, doc_id: str) -> dict[str, Any]:
    doc = w.db.get(doc_id)
    ids = [uuid.uuid4().hex, *history(w.db, doc_id)]
    doc.pop("_attachments")
    return {**doc, "_rev": f"{len(ids)}-{ids[0]}", "_revisions": {"start": len(ids), "ids": ids},
            "v": 2}


def bulk_docs_replicated(w: Ward, c: CouchClient, doc_id: str, rev: str) -> tuple[int, Any]:
    return call(c, "POST", f"{w.db.path}/_bulk_docs",
                body={"new_edits": False, "docs": [replicated_child(w, doc_id)]})


def put_replicated(w: Ward, c: CouchClient, doc_id: str, rev: str) -> tuple[int, Any]:
    return call(c, "PUT", f"{w.db.path}/{doc_id}", params={"new_edits": "false"},
                body=replicated_child(w, doc_id))


def put_attachment(w: Ward, c: CouchClient, doc_id: str, rev: str) -> tuple[int, Any]:
    return call_raw(c, "PUT", f"{w.db.path}/{doc_id}/photo.bin", params={"rev": rev},
               content=b"\x00\x01 not a photo", headers={"Content-Type": "image/png"})


def delete_attachment(w: Ward, c: CouchClient, doc_id: str, rev: str) -> tuple[int, Any]:
    return call(c, "DELETE", f"{w.db.path}/{doc_id}/note.txt", params={"rev": rev})


def put_multipart_related(w: Ward, c: CouchClient, doc_id: str, rev: str) -> tuple[int, Any]:
    doc = w.db.get(doc_id)
    doc["_attachments"]["extra.txt"] = {"follows": True, "content_type": "text/plain",
                                        "length": 5}
    body = multipart("carecouch", [
        ({"Content-Type": "application/json"}, json.dumps(doc).encode()),
        ({"Content-Disposition": 'attachment; filename="extra.txt"',
          "Content-Type": "text/plain"}, b"extra")])
    return call_raw(c, "PUT", f"{w.db.path}/{doc_id}", content=body,
               headers={"Content-Type": 'multipart/related; boundary="carecouch"'})


def post_form(w: Ward, c: CouchClient, doc_id: str, rev: str) -> tuple[int, Any]:
    body = multipart("carecouch", [
        ({"Content-Disposition": 'form-data; name="_rev"'}, rev.encode()),
        ({"Content-Disposition": 'form-data; name="_attachments"; filename="form.txt"',
          "Content-Type": "text/plain"}, b"from a form")])
    return call_raw(c, "POST", f"{w.db.path}/{doc_id}", content=body,
               headers={"Content-Type": "multipart/form-data; boundary=carecouch",
                        "Referer": c.url})


def update_handler(w: Ward, c: CouchClient, doc_id: str, rev: str) -> tuple[int, Any]:
    return call_raw(c, "PUT", f"{w.db.path}/_design/app/_update/touch/{doc_id}")


ROUTES: dict[str, Route] = {
    "PUT /{db}/{doc}": put_document,
    "POST /{db}": post_document,
    "DELETE /{db}/{doc}": delete_document,
    "COPY /{db}/{doc}": copy_document,
    "POST /{db}/_bulk_docs": bulk_docs,
    "POST /{db}/_bulk_docs new_edits=false": bulk_docs_replicated,
    "PUT /{db}/{doc}?new_edits=false": put_replicated,
    "PUT /{db}/{doc}/{att}": put_attachment,
    "DELETE /{db}/{doc}/{att}": delete_attachment,
    "PUT /{db}/{doc} multipart/related": put_multipart_related,
    "POST /{db}/{doc} multipart/form-data": post_form,
    "PUT /{db}/_design/{ddoc}/_update/{name}/{doc}": update_handler,
}


def refusal(status: int, body: Any) -> tuple[int, str | None]:
    """A route's refusal as (status, reason): _bulk_docs answers 201 with one entry."""
    if isinstance(body, list):
        entry = body[0] if body else {}
        return (403 if entry.get("error") == "forbidden" else status), entry.get("reason")
    return status, body.get("reason") if isinstance(body, dict) else None


@pytest.mark.parametrize("route", list(ROUTES), ids=list(ROUTES))
def test_another_member_is_validated_as_themself(ward: Ward, route: str) -> None:
    doc_id, rev = ward.record()
    status, body = ROUTES[route](ward, ward.other.client, doc_id, rev)
    assert refusal(status, body) == (
        403, f"written by {ward.other.name}, owned by {ward.owner.name}")
    assert ward.db.get(doc_id)["_rev"] == rev
    assert set(ward.db.get(doc_id)["_attachments"]) == {"note.txt"}


@pytest.mark.parametrize("route", list(ROUTES), ids=list(ROUTES))
def test_the_owner_is_validated_as_themself(ward: Ward, route: str) -> None:
    doc_id, rev = ward.record()
    status, body = ROUTES[route](ward, ward.owner.client, doc_id, rev)
    assert status in (200, 201, 202), body
    if isinstance(body, list):
        assert all("error" not in entry for entry in body), body


def test_concurrent_writers_are_each_validated_as_themselves(ward: Ward) -> None:
    # Every request is its own process in CouchDB; on the embedded server each write must keep
    # its own caller through PouchDB's asynchronous chain while others are in flight.
    records = [ward.record() for _ in range(12)]
    writers = [ward.owner if i % 2 == 0 else ward.other for i in range(len(records))]

    def write(i: int) -> tuple[int, Any]:
        doc_id, rev = records[i]
        return put_attachment(ward, writers[i].client, doc_id, rev)

    with ThreadPoolExecutor(max_workers=len(records)) as pool:
        results = list(pool.map(write, range(len(records))))
    for writer, (status, body) in zip(writers, results, strict=True):
        if writer is ward.owner:
            assert status == 201, body
        else:
            assert refusal(status, body) == (
                403, f"written by {writer.name}, owned by {ward.owner.name}")


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_member_cannot_change_design_document_attachments(ward: Ward, method: str) -> None:
    # couch_db:validate_doc_update/3: a design document needs a db admin, on every route
    ddoc = ward.db.get("_design/app")
    rev = str(ward.db.client.request(
        "PUT", f"{ward.db.path}/_design/app/asset.js", params={"rev": ddoc["_rev"]},
        content=b"// admin's", headers={"Content-Type": "application/javascript"},
    ).json()["rev"])
    status, body = call_raw(ward.other.client, method, f"{ward.db.path}/_design/app/asset.js",
                       params={"rev": rev}, content=b"// hostile",
                       headers={"Content-Type": "application/javascript"})
    assert (status, body) == (403, NOT_DB_ADMIN)
    assert ward.db.get("_design/app")["_rev"] == rev


# -- couch_query_servers:validate_doc_update/6: attachment stubs, never data --------------------

def test_validation_sees_stubs_for_an_attachment_put(ward: Ward) -> None:
    doc_id, rev = ward.record(probe_atts=True)
    status, body = put_attachment(ward, ward.owner.client, doc_id, rev)
    assert status == 403
    seen = reason_json(body)
    new = seen["newDoc"]["photo.bin"]
    assert new["stub"] is True and "data" not in new
    assert new["content_type"] == "image/png"
    kept = seen["newDoc"]["note.txt"]
    assert kept["stub"] is True and "data" not in kept
    assert kept["length"] == len(b"first") and kept["digest"].startswith("md5-")
    assert seen["oldDoc"]["note.txt"] == kept


def test_validation_sees_stubs_for_inline_attachment_data(ward: Ward) -> None:
    data = b"x" * 3000
    owner = ward.owner.client.db(ward.db.name)
    rev = owner.put({"_id": "inline", "owner": ward.owner.name, "probe_atts": True})["rev"]
    status, body = call(ward.owner.client, "PUT", f"{ward.db.path}/inline", body={
        "_rev": rev, "owner": ward.owner.name, "probe_atts": True,
        "_attachments": {"scan.bin": {"content_type": "application/octet-stream",
                                      "data": base64.b64encode(data).decode()}}})
    assert status == 403
    seen = reason_json(body)
    assert seen["oldDoc"] is None
    att = seen["newDoc"]["scan.bin"]
    assert att["stub"] is True and "data" not in att
    assert att["length"] == len(data)
    assert att["content_type"] == "application/octet-stream"
