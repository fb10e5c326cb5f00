"""Leases on exclusive records, as the device holds them (docs/design.md, "Exclusive
records: the lease protocol").

Online, the device asks the bridge for a lease (``POST /v1/leases``; renew and release
likewise), keeps the signed lease token sealed in the store, and re-reads the record so it
holds the revision that carries the lease. Offline, before it lets the clinician change the
record, it checks what the server will check when the edit syncs (exclusive.js), and the
token itself: the token verifies against the pinned bridge key; it names this record, this
clinician and this device; the record's ``lease`` is the token's lease; the edit (and a
completion's ``completed_at``) falls inside the lease.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from carecouch.clock import format_utc, parse_utc
from carecouch.records import RecordType

from .bridge_api import Answer
from .errors import PolicyRefused, TokenRefused
from .store.device import DeviceStore
from .trust import LEASE_TYPE, PinnedKeys

LEASE_FIELDS = ("holder", "device", "granted_at", "expires_at", "grant")
ACTIONS = {"claim": "/v1/leases", "renew": "/v1/leases/renew",
           "release": "/v1/leases/release"}
_PREFIX = "lease:"


class LeaseSession(Protocol):
    """What a lease request needs of the session with the bridge (``BridgeSession``)."""

    @property
    def leases(self) -> LeaseBook: ...

    def caseload_of(self, database: str) -> str: ...

    def post(self, path: str, body: dict[str, Any]) -> Answer: ...


class Refreshes(Protocol):
    """What a lease request needs of the device (``Device``): to re-read one record."""

    def refresh(self, database: str, doc_id: str) -> None: ...


def change(session: LeaseSession, device: Refreshes, action: str, database: str, record: str
           ) -> dict[str, Any]:
    """Claim, renew or release the lease on ``record`` through the bridge, keep (or drop) its
    token, and re-read the record so the device holds the revision carrying the lease."""
    book = session.leases
    body = {"caseload": session.caseload_of(database), "record": record}
    if action != "claim":
        body["grant"] = str(book.verified(database, record).get("grant"))
    answer = session.post(ACTIONS[action], body).body
    token = answer.get("token")
    if action == "release" or not isinstance(token, str):
        book.drop(database, record)
    else:
        book.keep(database, record, token)
    device.refresh(database, record)
    return {"database": database, "record": record, "action": action,
            "lease": answer.get("lease"), "rev": answer.get("rev")}


def create(session: LeaseSession, device: Refreshes, database: str, record_type: str,
           subject: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Create an exclusive record through the bridge (online): only the bridge may create
    one (exclusive.js), so two devices can never each make their own copy of an order. The
    device then holds the server's revision, ready for a lease claim."""
    body = {"caseload": session.caseload_of(database), "type": record_type,
            "subject": subject, "fields": dict(fields)}
    record = session.post("/v1/records", body).body.get("record")
    if not isinstance(record, dict) or not isinstance(record.get("_id"), str):
        raise TokenRefused("the bridge's answer to a record creation names no record")
    device.refresh(database, record["_id"])
    return record


def _name(database: str, record: str) -> str:
    return f"{_PREFIX}{database}/{record}"


class LeaseBook:
    """The lease tokens this device holds, and the offline checks that use them."""

    def __init__(self, store: DeviceStore, keys: PinnedKeys) -> None:
        self.store = store
        self.keys = keys

    def verified(self, database: str, record: str, token: str | None = None
                 ) -> dict[str, Any]:
        """The claims of the lease token held for ``record`` (or of ``token``), checked to
        be this device's lease on that record; :class:`PolicyRefused` when there is none."""
        token = token or self.store.secrets.get(_name(database, record))
        if token is None:
            raise PolicyRefused(f"you hold no lease on {record}: claim one while online "
                                f"(`carecouch-device lease claim {record}`)")
        claims = self.keys.verify(token, LEASE_TYPE, f"the lease token for {record}")
        if (claims.get("db"), claims.get("record")) != (database, record):
            raise TokenRefused(f"the lease token held for {record} is for another record")
        if claims.get("device") != self.store.device_id:
            raise TokenRefused(f"the lease token for {record} is for another device")
        return claims

    def keep(self, database: str, record: str, token: str) -> dict[str, Any]:
        """Check a token the bridge just granted, then keep it."""
        claims = self.verified(database, record, token)
        self.store.secrets.put(_name(database, record), token)
        return claims

    def drop(self, database: str, record: str) -> None:
        self.store.secrets.put(_name(database, record), None)

    def held(self) -> list[dict[str, Any]]:
        """Every lease token kept, for ``status`` (a token that no longer verifies says so)."""
        found = []
        for name in self.store.secrets.names(_PREFIX):
            database, _, record = name[len(_PREFIX):].partition("/")
            try:
                claims = self.verified(database, record)
                found.append({"database": database, "record": record,
                              **{k: claims.get(k) for k in LEASE_FIELDS}})
            except PolicyRefused as exc:
                found.append({"database": database, "record": record, "error": str(exc)})
        return found

    def check_edit(self, database: str, doc: Mapping[str, Any], spec: RecordType, *,
                   user: str, now: datetime) -> None:
        """Refuse an edit of an exclusive record that the server would refuse, or that no
        verified lease of this clinician covers."""
        record = str(doc.get("_id"))
        claims = self.verified(database, record)
        lease = {k: claims.get(k) for k in LEASE_FIELDS}
        if lease["holder"] != user:
            raise PolicyRefused(f"the lease on {record} is held by {lease['holder']}, not {user}")
        if doc.get("lease") != lease:
            raise PolicyRefused(f"{record}: the record's lease is not the one your token "
                                "grants; sync (or `carecouch-device lease renew`) so the "
                                "device holds the leased revision")
        granted, expires = parse_utc(str(lease["granted_at"])), parse_utc(str(lease["expires_at"]))
        # Only the end is checked against the clock: holding the token proves the grant is
        # past, whatever a clock estimate a fraction of a second off says.
        if now > expires:
            raise PolicyRefused(f"your lease on {record} ended at {lease['expires_at']} (now "
                                f"{format_utc(now)}): renew it while online "
                                f"(`carecouch-device lease renew {record}`)")
        if doc.get("status") not in spec.terminal:
            return
        if doc.get("completed_by") != user:
            raise PolicyRefused(f"{record}: completed_by must be the lease holder ({user})")
        try:
            completed = parse_utc(str(doc.get("completed_at")))
        except ValueError as exc:
            raise PolicyRefused(f"{record}: completed_at must be an ISO 8601 UTC time") from exc
        if not granted <= completed <= expires:
            raise PolicyRefused(f"{record}: completed_at {doc.get('completed_at')} is outside "
                                f"the lease ({lease['granted_at']} to {lease['expires_at']})")
