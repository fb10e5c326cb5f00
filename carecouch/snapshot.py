"""The policy snapshot: what the bridge's access policy lets one clinician do on one device,
signed by the bridge (token type :data:`SNAPSHOT_TYPE`) so the device enforces it with no
network. The one definition of its claims: the bridge builds a :class:`Snapshot` and signs
:meth:`Snapshot.to_claims`; a device verifies the token and reads it back with
:meth:`Snapshot.from_claims` (docs/bridge.md, "Signed snapshot and lease tokens").

Roles and record types hold per caseload (a nurse who is a prescriber on another team's
caseload is a nurse here): each database says its own; the top-level lists are their union,
for display.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .clock import format_utc, parse_utc

SNAPSHOT_TYPE = "carecouch-snapshot+jws"
LEASE_TYPE = "carecouch-lease+jws"
ISSUER = "carecouch-bridge"


@dataclass(frozen=True)
class SnapshotDatabase:
    caseload: str
    name: str
    filter: Mapping[str, Any]
    clinical_roles: tuple[str, ...]
    record_types: frozenset[str]        # what the clinician may write in this caseload
    resolver: bool = False
    break_glass: bool = False
    # What the device keeps (mobile_stub/working_set.py): the filter's time window, so the
    # device slides it offline too, and how long an attachment's data stays once the server
    # holds it (None: no window; kept with the record).
    time_window_seconds: int | None = None
    attachment_retention_seconds: int | None = None

    def to_claims(self) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "caseload": self.caseload, "name": self.name, "filter": dict(self.filter),
            "clinical_roles": list(self.clinical_roles),
            "record_types": sorted(self.record_types), "resolver": self.resolver,
            "time_window_seconds": self.time_window_seconds,
            "attachment_retention_seconds": self.attachment_retention_seconds}
        if self.break_glass:
            claims["break_glass"] = True
        return claims

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any], top: Mapping[str, Any]) -> SnapshotDatabase:
        """A database of the snapshot ``top``; one issued before roles were scoped says its
        roles and types only at the top (then they held in every caseload)."""
        scope = claims if "record_types" in claims else top
        return cls(caseload=_text(claims, "caseload"), name=_text(claims, "name"),
                   filter=dict(claims.get("filter") or {}),
                   clinical_roles=tuple(map(str, _list(scope, "clinical_roles"))),
                   record_types=frozenset(map(str, _list(scope, "record_types"))),
                   resolver=bool(claims.get("resolver")),
                   break_glass=bool(claims.get("break_glass")),
                   time_window_seconds=_seconds(claims, "time_window_seconds"),
                   attachment_retention_seconds=_seconds(claims,
                                                         "attachment_retention_seconds"))


@dataclass(frozen=True)
class Snapshot:
    user: str                          # the clinician (the identity provider's user)
    device: str
    username: str                      # the CouchDB user, "<user>~<device>"
    issued_at: datetime
    credential_expires_at: datetime
    offline_until: datetime            # no new work after this until the device revalidates
    policy_version: str
    lease_lifetime_seconds: int
    databases: tuple[SnapshotDatabase, ...]
    break_glass: Mapping[str, Any] | None = None
    iat: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)  # claims a newer bridge adds

    @property
    def record_types(self) -> frozenset[str]:
        """Every type the clinician may write somewhere (for display)."""
        return frozenset(t for db in self.databases for t in db.record_types)

    @property
    def clinical_roles(self) -> tuple[str, ...]:
        return tuple(sorted({r for db in self.databases for r in db.clinical_roles}))

    def database(self, name: str) -> SnapshotDatabase | None:
        return next((db for db in self.databases if db.name == name), None)

    def to_claims(self) -> dict[str, Any]:
        return {**self.extra,
                "iss": ISSUER, "sub": self.user, "device": self.device,
                "username": self.username, "iat": self.iat,
                "issued_at": format_utc(self.issued_at),
                "credential_expires_at": format_utc(self.credential_expires_at),
                "offline_until": format_utc(self.offline_until),
                "policy_version": self.policy_version,
                "clinical_roles": list(self.clinical_roles),
                "resolver": any(db.resolver for db in self.databases),
                "record_types": sorted(self.record_types),
                "lease_lifetime_seconds": self.lease_lifetime_seconds,
                "databases": [db.to_claims() for db in self.databases],
                "break_glass": dict(self.break_glass) if self.break_glass else None}

    @classmethod
    def from_claims(cls, claims: Mapping[str, Any]) -> Snapshot:
        """Raises KeyError, TypeError or ValueError for claims of another shape."""
        known = {"iss", "sub", "device", "username", "iat", "issued_at",
                 "credential_expires_at", "offline_until", "policy_version", "clinical_roles",
                 "resolver", "record_types", "lease_lifetime_seconds", "databases",
                 "break_glass"}
        glass = claims.get("break_glass")
        return cls(user=_text(claims, "sub"), device=_text(claims, "device"),
                   username=_text(claims, "username"),
                   issued_at=parse_utc(claims["issued_at"]),
                   credential_expires_at=parse_utc(claims["credential_expires_at"]),
                   offline_until=parse_utc(claims["offline_until"]),
                   policy_version=str(claims.get("policy_version", "")),
                   lease_lifetime_seconds=int(claims.get("lease_lifetime_seconds") or 0),
                   databases=tuple(SnapshotDatabase.from_claims(db, claims)
                                   for db in _list(claims, "databases")),
                   break_glass=dict(glass) if isinstance(glass, Mapping) else None,
                   iat=int(claims.get("iat") or 0),
                   extra={k: v for k, v in claims.items() if k not in known})

    def to_json(self) -> dict[str, Any]:
        """For ``status`` and ``login``: who, until when, which databases, what per caseload."""
        return {"user": self.user, "username": self.username,
                "issued_at": format_utc(self.issued_at),
                "credential_expires_at": format_utc(self.credential_expires_at),
                "offline_until": format_utc(self.offline_until),
                "record_types": sorted(self.record_types),
                "databases": sorted(db.name for db in self.databases),
                "caseloads": {db.name: {"caseload": db.caseload,
                                        "clinical_roles": list(db.clinical_roles),
                                        "record_types": sorted(db.record_types)}
                              for db in self.databases},
                "policy_version": self.policy_version}


def _text(claims: Mapping[str, Any], name: str) -> str:
    value = claims[name]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be text")
    return value


def _seconds(claims: Mapping[str, Any], name: str) -> int | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a number of seconds")
    return value


def _list(claims: Mapping[str, Any], name: str) -> Sequence[Any]:
    value = claims.get(name, [])
    if not isinstance(value, list):
        raise TypeError(f"{name} must be a list")
    return value
