"""Read-only reports on caseloads: what ``carecouch caseload list`` and ``show`` print.

The registry is read once; each caseload database then costs a few reads (info, design
documents, security, the conflicts view), run in parallel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from . import ddocs
from .couch import CouchClient, Doc
from .errors import CarecouchError, CouchNotFound
from .ids import caseload_db, check_caseload_id
from .parallel import DEFAULT_WORKERS, map_parallel
from .provisioning import CaseloadNotFound, Tick
from .registry import CaseloadRegistry, CaseloadState
from .security import caseload_security, same_security

SHORT_HASH = 8


@dataclass
class CaseloadStatus:
    id: str
    name: str
    team: str | None
    status: str  # registry status; "unrecorded" for a caseload database the registry lacks
    db: str
    db_exists: bool = False
    doc_count: int | None = None
    size: int | None = None  # bytes on disk
    conflicted_docs: int | None = None  # None: unknown (no conflicts view installed)
    design_version: str | None = None  # short hash of _design/carecouch
    design_current: bool | None = None  # every design document matches the couch directory
    security_ok: bool | None = None  # _security is what the status requires
    created_at: str | None = None
    updated_at: str | None = None
    design_docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    security: Doc | None = None
    error: str | None = None  # a read that failed for this caseload alone

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def registered(client: CouchClient, *, statuses: Sequence[str] = ()) -> list[CaseloadStatus]:
    """The registry's caseloads (one request), before :func:`fill` reads their databases."""
    records = CaseloadRegistry(client).caseloads()
    return [_from_record(r) for _, r in sorted(records.items())
            if not statuses or r.get("status") in statuses]


def show_caseload(client: CouchClient, caseload_id: str,
                  desired: dict[str, Doc]) -> CaseloadStatus:
    """One caseload in detail; also finds a database the registry does not know."""
    caseload_id = check_caseload_id(caseload_id)
    record = CaseloadRegistry(client).caseload(caseload_id)
    if record is not None:
        row = _from_record(record)
    else:
        row = CaseloadStatus(caseload_id, caseload_id, None, "unrecorded",
                             caseload_db(caseload_id))
    row = fill(client, [row], desired, workers=1)[0]
    if record is None and not row.db_exists:
        raise CaseloadNotFound(f"caseload {caseload_id} does not exist")
    if row.error:
        raise CarecouchError(row.error)
    return row


def _from_record(record: Doc) -> CaseloadStatus:
    return CaseloadStatus(
        id=str(record["id"]), name=str(record.get("name") or record["id"]),
        team=record.get("team"), status=str(record.get("status")),
        db=str(record.get("db") or caseload_db(record["id"])),
        created_at=record.get("created_at"), updated_at=record.get("updated_at"))


def fill(client: CouchClient, rows: list[CaseloadStatus], desired: dict[str, Doc], *,
         workers: int = DEFAULT_WORKERS, tick: Tick | None = None) -> list[CaseloadStatus]:
    """Read each caseload's database (in parallel); a failed read sets that row's ``error``."""
    def read(row: CaseloadStatus) -> CaseloadStatus:
        _read_db(client, row, desired)
        return row

    for row, result in zip(rows, map_parallel(read, rows, workers=workers, tick=tick),
                           strict=True):
        if isinstance(result, CarecouchError):
            row.error = str(result)
    return rows


def _read_db(client: CouchClient, row: CaseloadStatus, desired: dict[str, Doc]) -> None:
    db = client.db(row.db)
    info = db.info_or_none()
    row.db_exists = info is not None
    if info is None:
        return
    row.doc_count = int(info.get("doc_count", 0))
    sizes = info.get("sizes") or {}
    size = sizes.get("file")
    row.size = int(size) if isinstance(size, (int, float)) else None
    row.security = db.get_security()
    if row.status in (CaseloadState.ACTIVE, CaseloadState.ARCHIVED):
        wanted = caseload_security(row.id, archived=row.status == CaseloadState.ARCHIVED)
        row.security_ok = same_security(row.security, wanted)
    installed = db.design_docs()
    for ddoc_id, doc in installed.items():
        if ddocs.is_managed(doc) or ddoc_id in desired:
            version = ddocs.stamped_version(doc)
            want = ddocs.stamped_version(desired.get(ddoc_id))
            row.design_docs[ddoc_id] = {
                "version": version,
                "current": want is not None and version == want
                and ddocs.content_hash(doc) == want}
    main = installed.get(ddocs.MAIN_DDOC_ID)
    version = ddocs.stamped_version(main)
    row.design_version = version[:SHORT_HASH] if version else None
    row.design_current = all(
        ddoc_id in row.design_docs and row.design_docs[ddoc_id]["current"]
        for ddoc_id in desired) and all(
        ddoc_id in desired for ddoc_id in row.design_docs)
    if main is not None and "conflicts" in (main.get("views") or {}):
        row.conflicted_docs = _conflicted(client, row.db)


def _conflicted(client: CouchClient, db_name: str) -> int | None:
    try:
        result = client.db(db_name).view(ddocs.MAIN_DDOC, "conflicts", reduce=True)
    except CouchNotFound:
        return None
    rows = result.get("rows") or []
    return int(rows[0]["value"]) if rows else 0
