"""Clinical records for tests, and the two ways a record reaches the server.

``put`` is an ordinary write (``PUT`` with ``_rev``); ``push`` is what a device's replicator
does: it makes the new revision id itself and sends ``_bulk_docs`` with ``new_edits=false``
and the revision's full history, exactly as CouchDB's replication protocol does.

``settled`` turns either into the write as a cluster finally judges it (see there).
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from carecouch.couch import Database, Doc
from carecouch.ddocs import MAIN_DDOC_ID
from carecouch.errors import CouchConflict, CouchError, CouchForbidden, error_for_status
from carecouch.ids import session_name
from carecouch.records import Registry, load_registry, new_record_id, refusal_code
from carecouch.rules import shipped_rules
from mobile_stub.rules import compiled
from tests.helpers.provisioned import Caseload, Person

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
    return send(db, replicated(doc, parent, history=history))


def replicated(doc: Doc, parent: Doc | None = None, *, history: list[str] | None = None
               ) -> Doc:
    """``doc`` as a new revision, with the id and history a replicator sends (see push)."""
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
    return body


def send(db: Database, body: Doc) -> str:
    """``_bulk_docs`` with ``new_edits=false`` of one revision made by :func:`replicated`;
    a refusal is raised as the error it is."""
    for item in db.bulk_docs([body], new_edits=False):
        if item.get("error"):
            status = {"forbidden": 403, "unauthorized": 401}.get(item["error"], 500)
            raise error_for_status(status)(item.get("reason", ""), status=status,
                                           error=item["error"])
    return str(body["_rev"])


def checked_on_device(db: Database, doc: Doc, parent: Doc | None = None, *,
                      pushed_by: Write = push) -> str:
    """A device's save: the caseload's own rules run first, on the device, as
    mobile_stub/rules.py runs them (QuickJS, with the session's userCtx, ``oldDoc`` the
    revision edited); then the push. The device must refuse exactly what the server refuses,
    with the same reason, and accept what it accepts."""
    rules = compiled(db.get(MAIN_DDOC_ID))
    user_ctx = {**db.client.session()["userCtx"], "db": db.name}
    new_doc = replicated(doc, parent)
    old_doc = {k: v for k, v in parent.items() if k != "_revisions"} if parent else None
    local = rules.check(new_doc, old_doc, user_ctx)
    try:
        rev = pushed_by(db, doc, parent)
    except CouchError as exc:
        assert local is not None, f"the device accepted what the server refused: {exc}"
        assert (exc.error, exc.reason) == (local.error, local.reason)
        raise
    assert local is None, f"the device refused what the server accepted: {local.reason}"
    return rev


# How long a cluster's copies may take to agree on a write, and to hold a revision one copy
# refused while the others stored it (internal replication between healthy nodes: well under
# a second).
SETTLE_SECONDS = 10.0
STORED_CHECKS = (0.0, 0.25, 0.5, 1.0)


def settled(copies: int, write: Write, admin_db: Database) -> Write:
    """``write`` (``put`` or ``push``) as a server with ``copies`` copies finally judges it.

    One copy (the embedded server, a single CouchDB node) judges a write against everything
    written before it: its first answer is final and is returned unchanged. On a cluster a
    write returns once two of the three copies hold it, and each copy judges the next write on
    its own, so right after a write (docs/record-rules.md, "On a cluster"):

    - a copy still without the revision an ordinary write names answers 409
      (couch_db:prep_and_validate_update), one without a replicated write's parent answers
      ``exclusive.reread``, and the coordinator (fabric_doc_update) may pass either on instead
      of the others' answer. The bridge and the device re-read and retry; so does this, with
      the same body (and, pushed, the same revision), until the copies agree;
    - a replicated write the other copies stored can be answered with the one copy's refusal
      (fabric_doc_update's check_forbidden_msg); the device asks ``_revs_diff`` again and takes
      it as stored (mobile_stub/replication/push.py); so does this.

    What stays guaranteed, and is what the tests assert: the settled answer is the one a
    single copy gives, with its exact code, and a refused write is stored nowhere.
    """
    if copies == 1:
        return write

    def retried(db: Database, doc: Doc, parent: Doc | None = None) -> str:
        if write is not push:
            return until_agreed(copies, lambda: write(db, doc, parent))
        body = replicated(doc, parent)  # one revision, however often it is sent
        rev = str(body["_rev"])

        def once() -> str:
            try:
                return send(db, body)
            except CouchForbidden:
                if held(admin_db, str(body["_id"]), rev):
                    return rev
                raise
        return until_agreed(copies, once)

    return retried


def until_agreed(copies: int, attempt: Callable[[], str]) -> str:
    """``attempt()``, retried on a cluster while its answer is one a lagging copy gives
    (409, ``*.reread``), for up to SETTLE_SECONDS; then the last answer stands."""
    deadline = time.monotonic() + SETTLE_SECONDS
    pause = 0.05
    while True:
        try:
            return attempt()
        except (CouchConflict, CouchForbidden) as exc:
            lagging = isinstance(exc, CouchConflict) or refusal(exc).endswith(".reread")
            if copies == 1 or not lagging or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def held(db: Database, doc_id: str, rev: str) -> bool:
    """Whether the server comes to hold ``rev`` within a second or two (``_revs_diff`` is
    answered by one copy: asked again while internal replication catches up)."""
    for delay in STORED_CHECKS:
        time.sleep(delay)
        if rev not in db.revs_diff({doc_id: [rev]}).get(doc_id, {}).get("missing", []):
            return True
    return False


def read(db: Database, doc_id: str, rev: str | None = None) -> Doc:
    """The revision (default: winner) with its ``_revisions``, as a device holds it."""
    return db.get(doc_id, revs=True, **({"rev": rev} if rev else {}))


def refusal(exc: CouchError) -> str:
    """The stable code of a validation refusal: ``forbidden: "<code>: <message>"``."""
    assert exc.status == 403 and exc.error == "forbidden", str(exc)
    return refusal_code(exc.reason)


# -- exclusive records, as the bridge leases them and a holder completes them ----------------

def leased_order(caseload: Caseload, bridge_account: Person, holder: Person,
                 **lease_args: Any) -> Doc:
    """The bridge creates an order sign-off, then grants `holder` a lease (two revisions)."""
    order = order_signoff(bridge_account.user)
    db = bridge_account.db(caseload)
    put(db, order)
    created = read(caseload.db, order["_id"])
    put(db, {**created, "lease": lease(holder.user, holder.device, **lease_args)}, created)
    return read(caseload.db, order["_id"])


def completion(doc: Doc, holder: Person, *, status: str = "signed",
               completed_at: str | None = None, **extra: Any) -> Doc:
    return {**doc, "status": status, "completed_by": holder.user,
            "completed_at": completed_at or now(), "author": holder.user,
            "device": holder.device, "at": now(), **extra}
