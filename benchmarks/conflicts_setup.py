"""What the conflict benchmarks share: caseloads full of real conflicts, and clean-up.

Conflicts are made as the field makes them: two nurses' devices push diverging edits of the
same care plans (``_bulk_docs`` with ``new_edits=false``) through the caseload's validation.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from support import DesignProvisioner

from carecouch.couch import CouchClient, Database, Doc
from carecouch.ids import caseload_db, member_role, registry_doc_id
from carecouch.manifest import CaseloadSpec
from carecouch.provisioning import Provisioner
from carecouch.registry import REGISTRY_DB

AT = "2026-11-22T09:30:00.000Z"
BATCH = 500


@dataclass
class Nurse:
    user: str
    device: str
    client: CouchClient

    @property
    def account(self) -> str:
        return f"{self.user}~{self.device}"


def pushed(doc: Doc, parent: Doc | None) -> Doc:
    digest = uuid.uuid4().hex
    start = 1 if parent is None else parent["_revisions"]["start"] + 1
    ids = [digest, *(parent["_revisions"]["ids"] if parent else [])]
    return {**{k: v for k, v in doc.items() if k not in ("_rev", "_revisions")},
            "_rev": f"{start}-{digest}", "_revisions": {"start": start, "ids": ids}}


def push_all(db: Database, docs: Sequence[Doc]) -> None:
    for first in range(0, len(docs), BATCH):
        refused = [r for r in db.bulk_docs(list(docs[first:first + BATCH]), new_edits=False)
                   if r.get("error")]
        if refused:
            raise SystemExit(f"a push was refused: {refused[0]}")


def care_plan(nurse: Nurse, n: int) -> Doc:
    values = {"title": f"Care plan {n}", "goals": ["heal within 12 weeks"]}
    return {"_id": f"care_plan:{uuid.uuid4()}", "type": "care_plan",
            "subject": f"patient-{n % 500:04d}", "author": nurse.user, "device": nurse.device,
            "at": AT, "clock_offset_ms": -420, **values,
            "changed": {k: {"by": nurse.user, "at": AT} for k in values}}


def edited(doc: Doc, nurse: Nurse, at: str, **fields: object) -> Doc:
    stamps = {**doc["changed"], **{k: {"by": nurse.user, "at": at} for k in fields}}
    return {**doc, **fields, "author": nurse.user, "device": nurse.device, "at": at,
            "changed": stamps}


def make_conflicts(a: Nurse, b: Nurse, caseload: str, count: int) -> list[str]:
    """``count`` care plans, each edited offline on two devices and pushed by both."""
    db_a, db_b = (n.client.db(caseload_db(caseload)) for n in (a, b))
    plans = [pushed(care_plan(a, n), None) for n in range(count)]
    push_all(db_a, plans)
    push_all(db_a, [pushed(edited(p, a, "2026-11-22T10:00:00.000Z", title="A's title"), p)
                    for p in plans])
    push_all(db_b, [pushed(edited(p, b, "2026-11-22T10:05:00.000Z", note="B's note"), p)
                    for p in plans])
    return [p["_id"] for p in plans]


def observation(nurse: Nurse, n: int) -> Doc:
    return {"_id": f"observation:{nurse.user}~{nurse.device}:{uuid.uuid4()}",
            "type": "observation",
            "subject": f"patient-{n % 500:04d}", "author": nurse.user, "device": nurse.device,
            "at": AT, "clock_offset_ms": -420, "respiration_rate": 18, "spo2": 96,
            "spo2_scale": 1, "on_oxygen": False, "systolic_bp": 128, "pulse": 84,
            "consciousness": "A", "temperature": 37.2, "news2": 0}


def provision(admin: CouchClient, ids: Sequence[str], workers: int = 8,
              design: dict[str, Doc] | None = None) -> None:
    """``carecouch caseload apply`` of the benchmark's caseloads: with the shipped design
    documents, or with ``design`` (run again with the shipped ones, it upgrades them)."""
    specs = [CaseloadSpec(cid, f"Conflict benchmark {cid}", None) for cid in ids]
    provisioner = Provisioner(admin, workers=workers) if design is None else \
        DesignProvisioner(admin, design, workers=workers)
    provisioner.apply(specs)


@contextmanager
def bench_caseloads(url: str, admin: CouchClient, count: int, workers: int = 8,
                    design: dict[str, Doc] | None = None
                    ) -> Iterator[tuple[list[str], Nurse, Nurse]]:
    """``count`` fresh caseloads (with the shipped design documents, or ``design``) and two
    nurses who are members of all of them; all removed afterwards (the audit trail keeps its
    entries: it is append-only)."""
    ids = [f"bench{uuid.uuid4().hex[:8]}" for _ in range(count)]
    users = admin.db("_users")
    nurses = []
    for name, device in (("bench-ana", "tablet-a"), ("bench-ben", "tablet-b")):
        password = uuid.uuid4().hex
        account = f"{name}~{device}"
        users.put({"_id": f"org.couchdb.user:{account}", "name": account, "type": "user",
                   "roles": ["clinical:nurse", *map(member_role, ids)], "password": password})
        nurses.append(Nurse(name, device, CouchClient(url, account, password)))
    try:
        provision(admin, ids, workers, design)
        yield ids, nurses[0], nurses[1]
    finally:
        for nurse in nurses:
            nurse.client.close()
            _remove(users, f"org.couchdb.user:{nurse.account}")
        for cid in ids:
            admin.db(caseload_db(cid)).destroy(missing_ok=True)
            _remove(admin.db(REGISTRY_DB), registry_doc_id(cid))


def _remove(db: Database, doc_id: str) -> None:
    doc = db.get_or_none(doc_id)
    if doc is not None:
        db.delete(doc_id, doc["_rev"])
