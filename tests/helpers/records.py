"""Clinical records for tests, and the two ways a record reaches the server.

``put`` is an ordinary write (``PUT`` with ``_rev``); ``push`` is what a device's replicator
does: it makes the new revision id itself and sends ``_bulk_docs`` with ``new_edits=false``
and the revision's full history, exactly as CouchDB's replication protocol does.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from carecouch.couch import Database, Doc
from carecouch.ddocs import MAIN_DDOC_ID
from carecouch.errors import CouchError, error_for_status
from carecouch.ids import session_name
from carecouch.records import Registry, load_registry, new_record_id
from carecouch.rules import shipped_rules
from mobile_stub.rules import compiled

Write = Callable[[Database, Doc, "Doc | None"], str]


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def now(offset_minutes: float = 0) -> str:
    return iso(datetime.now(UTC) + timedelta(minutes=offset_minutes))


@functools.cache
def _registry() -> Registry:
    return load_registry()


def new_id(record_type: str, owner: str) -> str:
    """The id a device makes (append-only ids name the account writing them); a type the
    registry does not know (a test of refusals) gets ``<type>:<uuid>``."""
    if record_type not in _registry().types:
        return f"{record_type}:{uuid.uuid4()}"
    return new_record_id(_registry(), record_type, owner)


def envelope(record_type: str, author: str, device: str, /, **fields: Any) -> Doc:
    """A record by ``author`` on ``device``, as that clinician's device session
    (``<author>~<device>``, the account the rules read) makes it."""
    owner = session_name(author, device)
    doc: Doc = {"_id": new_id(record_type, owner), "type": record_type, "subject": "patient-001",
                "author": author, "device": device, "at": now(), "clock_offset_ms": -420}
    doc.update(fields)  # fields may override the envelope (tests of forged authorship)
    return doc


def observation(author: str, device: str, /, **fields: Any) -> Doc:
    """Vitals that score NEWS2 0; with ``news2`` not given, the score of the vitals given
    (news2.js, as a device derives it)."""
    vitals: dict[str, Any] = {"respiration_rate": 18, "spo2": 96, "spo2_scale": 1,
                              "on_oxygen": False, "systolic_bp": 128, "pulse": 84,
                              "consciousness": "A", "temperature": 37.2, **fields}
    if "news2" not in vitals:
        vitals["news2"] = news2_of(vitals)
    return envelope("observation", author, device, **vitals)


def news2_of(vitals: dict[str, Any]) -> int:
    return int(shipped_rules().call("lib/validate/news2", "derive", vitals))


def administration(author: str, device: str, /, **fields: Any) -> Doc:
    given: dict[str, Any] = {"medication": "paracetamol", "dose": 1, "unit": "g",
                             "route": "oral", "administered_at": now()}
    return envelope("administration", author, device, **{**given, **fields})


def care_plan(author: str, device: str, /, **fields: Any) -> Doc:
    values = {"title": "Venous leg ulcer", "goals": ["heal within 12 weeks"], **fields}
    stamps = {name: {"by": author, "at": now()} for name in values}
    return envelope("care_plan", author, device, changed=stamps, **values)


def lease(holder: str, device: str, *, minutes: float = 60, start: float = -1) -> Doc:
    return {"holder": holder, "device": device, "granted_at": now(start),
            "expires_at": now(start + minutes), "grant": uuid.uuid4().hex}


def order_signoff(bridge: str, /, **fields: Any) -> Doc:
    order: dict[str, Any] = {"order": "order-77", "status": "open",
                             "description": "Start oral amoxicillin 500 mg TDS for 5 days"}
    return envelope("order_signoff", bridge, "bridge", **{**order, **fields})


def put(db: Database, doc: Doc, parent: Doc | None = None) -> str:
    """An ordinary write of ``doc`` on top of ``parent`` (or a creation)."""
    body = {k: v for k, v in doc.items() if k not in ("_rev", "_revisions")}
    if parent is not None:
        body["_rev"] = parent["_rev"]
    rev: str = db.put(body)["rev"]
    return rev


def push(db: Database, doc: Doc, parent: Doc | None = None, *,
         history: list[str] | None = None) -> str:
    """A device's push of ``doc`` as a new revision on top of ``parent`` (fetched with
    ``revs=true``), or a first revision; ``history`` replaces the ancestry it claims."""
    rev_hash = uuid.uuid4().hex
    if history is not None:
        ids = [rev_hash, *history]
        start = len(ids) if parent is None else parent["_revisions"]["start"] + 1
    elif parent is not None:
        start = parent["_revisions"]["start"] + 1
        ids = [rev_hash, *parent["_revisions"]["ids"]]
    else:
        start, ids = 1, [rev_hash]
    body = {k: v for k, v in doc.items() if k not in ("_rev", "_revisions")}
    body["_rev"] = f"{start}-{rev_hash}"
    body["_revisions"] = {"start": start, "ids": ids}
    for item in db.bulk_docs([body], new_edits=False):
        if item.get("error"):
            status = {"forbidden": 403, "unauthorized": 401}.get(item["error"], 500)
            raise error_for_status(status)(item.get("reason", ""), status=status,
                                           error=item["error"])
    return str(body["_rev"])


def checked_on_device(db: Database, doc: Doc, parent: Doc | None = None) -> str:
    """A device's save: the caseload's own rules run first, on the device, as
    mobile_stub/rules.py runs them (QuickJS, with the session's userCtx, ``oldDoc`` the
    revision edited); then the push. The device must refuse exactly what the server refuses,
    with the same reason, and accept what it accepts."""
    rules = compiled(db.get(MAIN_DDOC_ID))
    user_ctx = {**db.client.session()["userCtx"], "db": db.name}
    rev_hash = uuid.uuid4().hex
    start = parent["_revisions"]["start"] + 1 if parent is not None else 1
    ids = [rev_hash, *(parent["_revisions"]["ids"] if parent is not None else [])]
    new_doc = {k: v for k, v in doc.items() if k not in ("_rev", "_revisions")}
    new_doc.update(_rev=f"{start}-{rev_hash}", _revisions={"start": start, "ids": ids})
    old_doc = {k: v for k, v in parent.items() if k != "_revisions"} if parent else None
    local = rules.check(new_doc, old_doc, user_ctx)
    try:
        rev = push(db, doc, parent)
    except CouchError as exc:
        assert local is not None, f"the device accepted what the server refused: {exc}"
        assert (exc.error, exc.reason) == (local.error, local.reason)
        raise
    assert local is None, f"the device refused what the server accepted: {local.reason}"
    return rev


def read(db: Database, doc_id: str, rev: str | None = None) -> Doc:
    """The revision (default: winner) with its ``_revisions``, as a device holds it."""
    return db.get(doc_id, revs=True, **({"rev": rev} if rev else {}))


def refusal(exc: CouchError) -> str:
    """The stable code of a validation refusal: ``forbidden: "<code>: <message>"``."""
    assert exc.status == 403 and exc.error == "forbidden", str(exc)
    return exc.reason.split(":", 1)[0]
