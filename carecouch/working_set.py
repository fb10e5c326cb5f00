"""The clinical working set: what a device holds, what it pulls first, and how large it is.

- **Critical updates first.** The registry marks the record types urgent for a field worker
  (``urgent``: every new order sign-off, controlled-drug check and changed care plan; an
  observation whose NEWS2 calls for an urgent response). :func:`urgent_selector` turns that,
  within a device's filter (``carecouch/device`` query parameters), into a Mango selector: the
  device pulls ``filter=_selector`` with it before the backlog (docs/device.md).
- **Scope size.** :func:`scope` counts, with the ``working_set`` and ``by_subject`` views,
  how many documents and bytes a device holding a caseload through a filter would carry: for
  ``policy explain``, ``GET /v1/policy`` and the bridge's cap at issuance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .couch import CouchClient, Database
from .ddocs import MAIN_DDOC
from .policy import Grant
from .records import Registry


def _types(query: Mapping[str, str], registry: Registry) -> list[str]:
    listed = query.get("types")
    return sorted(listed.split(",")) if listed else sorted(registry.types)


def urgent_selector(registry: Registry, query: Mapping[str, str]) -> dict[str, Any] | None:
    """The urgent records a device with this filter holds, as a Mango selector (``None``:
    none of its types is urgent). Append-only records keep the filter's time window."""
    window = query.get("not_before")
    alternatives: list[dict[str, Any]] = []
    for name in _types(query, registry):
        spec = registry.types.get(name)
        if spec is None or spec.urgent is False:
            continue
        clause: dict[str, Any] = {"type": name}
        if isinstance(spec.urgent, Mapping):
            clause.update(spec.urgent)
        if window and spec.record_class == "append-only":
            clause["at"] = {"$gte": window}
        alternatives.append(clause)
    if not alternatives:
        return None
    return alternatives[0] if len(alternatives) == 1 else {"$or": alternatives}


@dataclass(frozen=True)
class Scope:
    documents: int
    bytes: int

    def __add__(self, other: Scope) -> Scope:
        return Scope(self.documents + other.documents, self.bytes + other.bytes)

    def to_json(self) -> dict[str, int]:
        return {"documents": self.documents, "bytes": self.bytes}


NOTHING = Scope(0, 0)


def scope(db: Database, registry: Registry, query: Mapping[str, str]) -> Scope:
    """Documents and bytes (JSON plus attachments) a device would hold of ``db`` through the
    ``carecouch/device`` filter with ``query``; deletions (tombstones) are not counted."""
    window = query.get("not_before")
    pinned = [s for s in (query.get("subjects") or "").split(",") if s]
    total = NOTHING
    for name in _types(query, registry):
        spec = registry.types.get(name)
        if spec is None:
            continue
        windowed = bool(window) and spec.record_class == "append-only"
        total += _stats(db, "working_set", [name, window if windowed else None], [name, {}])
        for subject in pinned if windowed else ():
            # A pinned patient's records older than the window pass too.
            total += _stats(db, "by_subject", [subject, name, None], [subject, name, window],
                            inclusive_end=False)
    return total


def _stats(db: Database, view: str, start: list[Any], end: list[Any], *,
           inclusive_end: bool = True) -> Scope:
    rows = db.view(MAIN_DDOC, view, startkey=start, endkey=end, reduce=True,
                   inclusive_end=inclusive_end)["rows"]
    if not rows:
        return NOTHING
    value = rows[0]["value"]
    return Scope(int(value.get("count", 0)), int(value.get("sum", 0)))


def grant_scope(client: CouchClient, grant: Grant, registry: Registry,
                now: datetime) -> dict[str, Scope]:
    """Per granted caseload, what a device of this grant would hold now."""
    return {c.id: scope(client.db(c.db), registry, c.filter.query_params(now))
            for c in grant.caseloads.values()}


def over_limits(grant: Grant, scopes: Mapping[str, Scope]) -> list[str]:
    """What the policy's caps (``max_documents``, ``max_bytes``) say is too much, in words."""
    total = sum(scopes.values(), NOTHING)
    found = []
    if "max_documents" in grant.limits and total.documents > grant.limits["max_documents"]:
        found.append(f"{total.documents} documents (the policy allows "
                     f"{grant.limits['max_documents']})")
    if "max_bytes" in grant.limits and total.bytes > grant.limits["max_bytes"]:
        found.append(f"{total.bytes} bytes (the policy allows {grant.limits['max_bytes']})")
    return found
