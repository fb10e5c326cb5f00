"""Caseload records in ``carecouch_registry`` (document shape: docs/decisions.md).

The registry also holds devices and the policy version (other parts write those); this
module reads and writes only the ``caseload:<id>`` documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Any

from .clock import utc_now
from .couch import CouchClient, Doc
from .ddocs import content_hash, stamp
from .errors import CouchNotFound
from .ids import caseload_db, registry_doc_id
from .security import ensure_admin_only_db

REGISTRY_DB = "carecouch_registry"


class CaseloadState(StrEnum):
    """A caseload record's ``status``."""

    ACTIVE = "active"        # its members read and write it
    ARCHIVED = "archived"    # admin-only: the data is kept, no member syncs it
    DESTROYED = "destroyed"  # its database is gone; the record remains as the trace


STATUSES = tuple(state.value for state in CaseloadState)
_PREFIX = "caseload:"
# The registry's own design document: the bridge's index, part of the program (not one of the
# caseload design documents IT may customise under CARECOUCH_COUCH_DIR).
REGISTRY_DDOC = "carecouch-registry"
BY_TEAM = "caseloads_by_team"
BY_TEAM_MAP = Path(__file__).resolve().parent / "js" / "registry_caseloads_by_team.js"


def registry_design_doc() -> Doc:
    """``_design/carecouch-registry``: view ``caseloads_by_team`` (key: the team)."""
    view = {"map": BY_TEAM_MAP.read_text(encoding="utf-8").strip() + "\n"}
    return stamp(REGISTRY_DDOC, {"language": "javascript", "views": {BY_TEAM: view}})


def caseload_record(caseload_id: str, *, name: str, team: str | None, status: str,
                    design_docs: Mapping[str, str], previous: Doc | None = None,
                    now: str | None = None) -> Doc:
    """The registry document for a caseload; keeps ``_rev`` and ``created_at`` of ``previous``.

    A caseload re-created after being destroyed starts a new life, so it gets a new
    ``created_at``.
    """
    now = now or utc_now()
    doc: Doc = {"_id": registry_doc_id(caseload_id), "type": "caseload", "id": caseload_id,
                "name": name, "team": team, "db": caseload_db(caseload_id), "status": status,
                "created_at": now, "updated_at": now, "design_docs": dict(design_docs)}
    if previous is not None:
        doc["_rev"] = previous["_rev"]
        if previous.get("status") != CaseloadState.DESTROYED and previous.get("created_at"):
            doc["created_at"] = previous["created_at"]
    return doc


def _records(rows: Iterable[Mapping[str, Any]]) -> dict[str, Doc]:
    return {row["doc"]["id"]: row["doc"] for row in rows
            if isinstance(row.get("doc"), dict) and row["doc"].get("type") == "caseload"
            and "id" in row["doc"]}


def same_record(a: Mapping[str, Any] | None, b: Mapping[str, Any]) -> bool:
    """Equal apart from ``_rev`` and timestamps: nothing worth writing differs."""
    if a is None:
        return False
    ignore = {"_rev", "updated_at", "created_at"}
    return ({k: v for k, v in a.items() if k not in ignore}
            == {k: v for k, v in b.items() if k not in ignore})


class CaseloadRegistry:
    def __init__(self, client: CouchClient) -> None:
        self.client = client
        self.db = client.db(REGISTRY_DB)

    def ensure(self) -> bool:
        """Create the registry database (admin only) and its design document on first use, or
        bring the design document up to date; True if anything was written."""
        created = ensure_admin_only_db(self.client, REGISTRY_DB)
        wanted = registry_design_doc()
        current = self.db.get_or_none(wanted["_id"])
        if current is not None and content_hash(current) == content_hash(wanted):
            return created
        if current is not None:
            wanted["_rev"] = current["_rev"]
        self.db.put(wanted)
        return True

    def caseloads(self) -> dict[str, Doc]:
        """Every caseload record, keyed by caseload id, in one request (``{}`` before first use)."""
        return {doc["id"]: doc for doc in self.db.docs_with_prefix(_PREFIX) if "id" in doc}

    def active_ids(self) -> list[str]:
        """The ids of the active caseloads, sorted (one request)."""
        return sorted(c for c, r in self.caseloads().items()
                      if r.get("status") == CaseloadState.ACTIVE)

    def caseloads_for(self, ids: Iterable[str], teams: Iterable[str]) -> dict[str, Doc]:
        """The caseload records named in ``ids`` and those of ``teams``, keyed by caseload id:
        what a policy rule can grant one user (one request for each kind asked for). The cost
        follows what is asked, not the size of the registry."""
        found: dict[str, Doc] = {}
        ids, teams = sorted(set(ids)), sorted(set(teams))
        if ids:
            rows = self.db.all_docs(keys=[registry_doc_id(c) for c in ids],
                                    include_docs=True)["rows"]
            found.update(_records(rows))
        if teams:
            try:
                rows = self._by_team(teams)
            except CouchNotFound:  # a registry made before the view existed
                self.ensure()
                rows = self._by_team(teams)
            found.update(_records(rows))
        return found

    def _by_team(self, teams: list[str]) -> list[Doc]:
        rows: list[Doc] = self.db.view(REGISTRY_DDOC, BY_TEAM, keys=teams,
                                       include_docs=True)["rows"]
        return rows

    def caseload(self, caseload_id: str) -> Doc | None:
        if not self.db.exists():
            return None
        return self.db.get_or_none(registry_doc_id(caseload_id))

    def write(self, docs: list[Doc]) -> dict[str, str]:
        """Write records in one request; updates their ``_rev``.

        Returns ``{caseload id: reason}`` for each record CouchDB refused (usually a 409:
        someone changed it meanwhile), so the caller can report exactly those caseloads.
        """
        if not docs:
            return {}
        refused: dict[str, str] = {}
        for doc, result in zip(docs, self.db.bulk_docs(docs), strict=True):
            if "error" in result:
                refused[doc["id"]] = f"{result.get('error')}: {result.get('reason')}"
            else:
                doc["_rev"] = result["rev"]
        return refused
