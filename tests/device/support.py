"""Comparing what the server and devices hold: every leaf revision with its full history."""

from __future__ import annotations

from typing import Any

from carecouch.couch import CouchClient, Database
from carecouch.errors import CouchError, CouchUnauthorized
from carecouch.ids import USERS_DB, user_doc_id
from carecouch.revs import revisions_object
from mobile_stub.store import LocalDatabase
from tests.helpers.waiting import wait_until

# doc id -> leaf rev -> {"deleted": bool, "revisions": _revisions, "body": fields}
Leaves = dict[str, dict[str, dict[str, Any]]]


def _entry(doc: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in doc.items() if not k.startswith("_")}
    return {"deleted": bool(doc.get("_deleted")), "revisions": doc["_revisions"], "body": body}


def server_leaves(db: Database, *, include_design: bool = False) -> Leaves:
    out: Leaves = {}
    for row in db.changes(style="all_docs")["results"]:
        if row["id"].startswith("_design/") and not include_design:
            continue
        found = db.leaf_revisions(row["id"], revs=True)
        out[row["id"]] = {e["ok"]["_rev"]: _entry(e["ok"]) for e in found if "ok" in e}
    return out


def device_leaves(local: LocalDatabase, *, include_design: bool = False) -> Leaves:
    out: Leaves = {}
    for doc_id in local.doc_ids(include_deleted=True):
        if doc_id.startswith("_design/") and not include_design:
            continue
        parents = local.parents(doc_id)
        out[doc_id] = {}
        for leaf in local.leaves(doc_id):
            doc = local.get(doc_id, leaf.rev)
            doc["_revisions"] = revisions_object(local.history(doc_id, leaf.rev, parents))
            out[doc_id][leaf.rev] = _entry(doc)
    return out


def pouch_leaves(dump: dict[str, dict[str, dict[str, Any]]]) -> Leaves:
    return {doc_id: {rev: _entry(doc) for rev, doc in leaves.items()}
            for doc_id, leaves in dump.items() if not doc_id.startswith("_design/")}


def delete_user(admin: CouchClient, server_url: str, name: str, password: str) -> None:
    """Delete a CouchDB user (as a revocation, a rotation or the reaper does), and return once
    the server refuses it: CouchDB evicts its authentication cache asynchronously."""
    users = admin.db(USERS_DB)
    doc = users.get(user_doc_id(name))
    users.delete(doc["_id"], doc["_rev"])

    def refused() -> bool:
        with CouchClient(server_url, name, password, retries=0) as client:
            try:
                return client.session()["userCtx"]["name"] is None
            except CouchUnauthorized:
                return True
            except CouchError:
                return False
    wait_until(refused, timeout=30, what=f"the server refuses the deleted user {name}")
