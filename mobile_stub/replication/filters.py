"""The replication filter a device pulls with, as the bridge hands it out.

A filter only minimises what a device holds; the database is the read boundary
(docs/design.md, "Databases and roles"). Two forms, both standard CouchDB:

- a design-document filter with query parameters: ``_changes?filter=carecouch/by_types&types=..``
- a Mango selector: ``POST _changes?filter=_selector`` with ``{"selector": {...}}`` (CouchDB 2+).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

DESIGN: Literal["design"] = "design"
SELECTOR: Literal["selector"] = "selector"


@dataclass(frozen=True)
class ReplicationFilter:
    kind: Literal["design", "selector"]
    name: str | None = None                      # "<ddoc>/<filter>" for a design filter
    query_params: Mapping[str, str] = field(default_factory=dict)
    selector: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.kind == DESIGN:
            if not self.name or self.name.count("/") != 1 or self.name.startswith("_"):
                raise ValueError(f"a design filter is named '<ddoc>/<filter>', got {self.name!r}")
            reserved = {"filter", "since", "limit", "style", "include_docs", "feed"}
            clash = sorted(reserved & set(self.query_params))
            if clash:
                raise ValueError(f"filter query parameters may not be named {clash}")
        elif self.kind == SELECTOR:
            if not isinstance(self.selector, Mapping) or not self.selector:
                raise ValueError("a selector filter needs a non-empty selector object")
        else:
            raise ValueError(f"unknown filter kind {self.kind!r}")

    @classmethod
    def design(cls, name: str, **query_params: str) -> ReplicationFilter:
        return cls(DESIGN, name=name, query_params=dict(query_params))

    @classmethod
    def mango(cls, selector: Mapping[str, Any]) -> ReplicationFilter:
        return cls(SELECTOR, selector=dict(selector))

    # -- the wire form the bridge sends and the store keeps --------------------------------

    def to_json(self) -> dict[str, Any]:
        if self.kind == DESIGN:
            return {"kind": DESIGN, "name": self.name, "query_params": dict(self.query_params)}
        return {"kind": SELECTOR, "selector": dict(self.selector or {})}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> ReplicationFilter:
        if raw.get("kind") == DESIGN:
            params = raw.get("query_params") or {}
            return cls(DESIGN, name=str(raw.get("name")),
                       query_params={str(k): str(v) for k, v in params.items()})
        if raw.get("kind") == SELECTOR:
            return cls(SELECTOR, selector=raw.get("selector"))
        raise ValueError(f"not a replication filter: {dict(raw)!r}")

    def canonical(self) -> str:
        """Stable text for the replication id: a different filter is a different replication."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    # -- how the changes feed is asked for --------------------------------------------------

    def changes_params(self) -> dict[str, str]:
        if self.kind == DESIGN:
            return {"filter": str(self.name), **dict(self.query_params)}
        return {"filter": "_selector"}

    def changes_body(self) -> dict[str, Any] | None:
        return {"selector": dict(self.selector or {})} if self.kind == SELECTOR else None
