"""Raw CouchDB-protocol calls that return the status with the body, revision ids in CouchDB's
format, validation design documents: the conformance suite's, and the bridge tests' too."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from carecouch.couch import CouchClient, Database

ANY_ERROR = range(400, 600)

NOT_AUTHORIZED = {"error": "unauthorized", "reason": "You are not authorized to access this db."}
NOT_ALLOWED = {"error": "forbidden", "reason": "You are not allowed to access this db."}
NOT_SERVER_ADMIN = {"error": "unauthorized", "reason": "You are not a server admin."}
MISSING = {"error": "not_found", "reason": "missing"}


def call(client: CouchClient, method: str, path: str, *, params: Mapping[str, Any] | None = None,
         body: Any = None, headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
    """One request whatever its status; returns ``(status, decoded JSON body or None)``."""
    response = client.request(method, path, params=params, json_body=body, headers=headers,
                              idempotent=False, ok=ANY_ERROR)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, None


def call_raw(client: CouchClient, method: str, path: str, *, content: bytes = b"",
             params: Mapping[str, Any] | None = None,
             headers: Mapping[str, str] | None = None) -> tuple[int, Any]:
    """Like :func:`call`, with a body sent as given (multipart, binary, hand-made JSON)."""
    response = client.request(method, path, params=params, content=content, headers=headers,
                              idempotent=False, ok=ANY_ERROR)
    try:
        return response.status_code, response.json()
    except ValueError:
        return response.status_code, None


def rev_hash() -> str:
    """A revision id as CouchDB makes them: 32 lowercase hex digits."""
    return uuid.uuid4().hex


def revs(*ids: str, start: int) -> dict[str, Any]:
    """A ``_revisions`` object: ``ids`` newest first."""
    return {"start": start, "ids": list(ids)}


def replicated(doc_id: str, pos: int, ids: list[str], **body: Any) -> dict[str, Any]:
    """A document as a replicator pushes it with ``new_edits=false``."""
    return {"_id": doc_id, "_rev": f"{pos}-{ids[0]}", "_revisions": revs(*ids, start=pos), **body}


def put_validator(db: Database, source: str, name: str = "rules") -> str:
    """Install ``validate_doc_update`` (a JS function expression) in ``_design/<name>``."""
    result = db.put({"_id": f"_design/{name}", "validate_doc_update": source})
    return str(result["rev"])


def reason_json(body: Any) -> Any:
    """A validation function that reports what it saw throws {forbidden: JSON.stringify(...)}."""
    assert isinstance(body, dict), body
    return json.loads(body["reason"])
