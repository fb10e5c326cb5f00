"""The policy snapshot: what the bridge's access policy lets this clinician do on this device,
signed by the bridge so the device can enforce it with no network (docs/bridge.md, "Signed
snapshot and lease tokens").

It is verified every time it is read, against the keys pinned at enrolment: a snapshot edited
in the store, or issued for another device, is never trusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from carecouch.clock import format_utc, parse_utc

from .errors import TokenRefused
from .trust import SNAPSHOT_TYPE, PinnedKeys


@dataclass(frozen=True)
class Snapshot:
    user: str                          # the clinician (the identity provider's user)
    device: str
    username: str                      # the CouchDB user, "<user>~<device>"
    issued_at: datetime
    credential_expires_at: datetime
    offline_until: datetime            # no new work after this until the device revalidates
    record_types: frozenset[str]       # what the user may write
    databases: Mapping[str, str]       # database name -> caseload id, what the device may sync
    policy_version: str
    lease_lifetime_seconds: int

    @classmethod
    def verify(cls, token: str, keys: PinnedKeys, device_id: str) -> Snapshot:
        """The snapshot in ``token``; :class:`TokenRefused` unless a pinned key signed it for
        this device."""
        claims = keys.verify(token, SNAPSHOT_TYPE, "the policy snapshot")
        try:
            snapshot = cls._from_claims(claims)
        except (KeyError, TypeError, ValueError) as exc:
            raise TokenRefused(f"the policy snapshot is malformed ({exc})") from exc
        if snapshot.device != device_id:
            raise TokenRefused(f"the policy snapshot is for device {snapshot.device}, not "
                               "this one")
        return snapshot

    @classmethod
    def _from_claims(cls, claims: Mapping[str, Any]) -> Snapshot:
        databases = claims["databases"]
        types = claims["record_types"]
        if not isinstance(databases, list) or not isinstance(types, list):
            raise TypeError("databases and record_types must be lists")
        return cls(user=_text(claims, "sub"), device=_text(claims, "device"),
                   username=_text(claims, "username"),
                   issued_at=parse_utc(claims["issued_at"]),
                   credential_expires_at=parse_utc(claims["credential_expires_at"]),
                   offline_until=parse_utc(claims["offline_until"]),
                   record_types=frozenset(str(t) for t in types),
                   databases={_text(db, "name"): _text(db, "caseload") for db in databases},
                   policy_version=str(claims.get("policy_version", "")),
                   lease_lifetime_seconds=int(claims.get("lease_lifetime_seconds") or 0))

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user, "username": self.username,
                "issued_at": format_utc(self.issued_at),
                "credential_expires_at": format_utc(self.credential_expires_at),
                "offline_until": format_utc(self.offline_until),
                "record_types": sorted(self.record_types),
                "databases": sorted(self.databases), "policy_version": self.policy_version}


def _text(claims: Mapping[str, Any], name: str) -> str:
    value = claims[name]
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be text")
    return value
