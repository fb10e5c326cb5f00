"""Enrolled devices and revoked users in ``carecouch_registry`` (shapes: docs/decisions.md).

A device enrols once with an Ed25519 public key; every later bridge request it makes is signed
with the private key, which never leaves it. The registry remembers which clinician's session
the device holds now (``holder``), so that when a shared tablet changes hands the previous
clinician's credential is rotated away. A revoked user is remembered with the time of the
revocation: identity-provider tokens issued before it are refused.

All of it is in CouchDB, so several bridge instances agree without talking to each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .clock import utc_now
from .couch import CouchClient, Doc
from .errors import CarecouchError, CouchConflict
from .registry import REGISTRY_DB

DEVICE_PREFIX = "device:"


class DeviceStatus(StrEnum):
    """An enrolled device's ``status`` in the registry."""

    ACTIVE = "active"
    REVOKED = "revoked"
    UNENROLLED = "unenrolled"  # the fleet's word for a reporting device the registry lacks

REVOCATION_PREFIX = "user-revocation:"


class DeviceExists(CarecouchError):
    pass


class DeviceBusy(CarecouchError):
    """The device document kept changing under us (concurrent requests for one device)."""


@dataclass(frozen=True)
class Device:
    id: str
    public_key: str
    status: str  # active | revoked
    enrolled_by: str
    holder: str | None
    doc: Doc

    @classmethod
    def from_doc(cls, doc: Doc) -> Device:
        return cls(id=str(doc["id"]), public_key=str(doc["public_key"]),
                   status=str(doc.get("status")), enrolled_by=str(doc.get("enrolled_by")),
                   holder=doc.get("holder"), doc=doc)

    def as_json(self) -> dict[str, Any]:
        keys = ("id", "label", "status", "enrolled_by", "enrolled_at", "holder", "revoked_at",
                "revoked_by", "public_key")
        return {k: self.doc.get(k) for k in keys}


class DeviceRegistry:
    def __init__(self, admin: CouchClient) -> None:
        self.db = admin.db(REGISTRY_DB)

    def get(self, device_id: str) -> Device | None:
        doc = self.db.get_or_none(DEVICE_PREFIX + device_id)
        return Device.from_doc(doc) if doc is not None else None

    def read(self, device_id: str, user: str | None) -> tuple[Device | None, str | None]:
        """The device and, if ``user`` is given, the time that user was last revoked, in one
        request (``_all_docs`` with keys reads each document as a GET does, from a quorum of
        copies on a cluster, so a revocation written before it is seen)."""
        ids = [DEVICE_PREFIX + device_id] + ([REVOCATION_PREFIX + user] if user else [])
        docs = {row.get("key"): row.get("doc") for row in
                self.db.all_docs(keys=ids, include_docs=True)["rows"]}
        device_doc = docs.get(ids[0])
        revocation = docs.get(ids[1]) if user else None
        revoked_at = revocation.get("revoked_at") if isinstance(revocation, dict) else None
        device = Device.from_doc(device_doc) if isinstance(device_doc, dict) else None
        return device, revoked_at if isinstance(revoked_at, str) else None

    def enrol(self, device_id: str, public_key: str, user: str, label: str | None) -> Device:
        doc: Doc = {"_id": DEVICE_PREFIX + device_id, "type": "device", "id": device_id,
                    "public_key": public_key, "label": label, "status": DeviceStatus.ACTIVE,
                    "enrolled_by": user, "enrolled_at": utc_now(), "holder": None}
        try:
            doc["_rev"] = self.db.put(doc)["rev"]
        except CouchConflict as exc:  # CouchDB serialises two enrolments of one id
            raise DeviceExists(f"device {device_id} is already enrolled") from exc
        return Device.from_doc(doc)

    def set_holder(self, device: Device, user: str) -> str | None:
        """Record that ``user`` holds the device's session now; returns the previous holder."""
        current = device
        for _ in range(5):
            previous = current.holder
            if previous == user:
                return previous
            try:
                self.db.put({**current.doc, "holder": user, "holder_since": utc_now()})
                return previous
            except CouchConflict:
                fresh = self.get(device.id)
                if fresh is None:
                    raise DeviceBusy(f"device {device.id} is no longer enrolled") from None
                current = fresh
        raise DeviceBusy(f"device {device.id} keeps changing; try again")

    def revoke(self, device_id: str, by: str) -> Device | None:
        """Mark the device revoked (it can never sign a request again); None if unknown."""
        for _ in range(5):
            device = self.get(device_id)
            if device is None:
                return None
            if device.status == DeviceStatus.REVOKED:
                return device
            doc = {**device.doc, "status": DeviceStatus.REVOKED, "revoked_at": utc_now(),
                   "revoked_by": by}
            try:
                doc["_rev"] = self.db.put(doc)["rev"]
                return Device.from_doc(doc)
            except CouchConflict:
                continue
        raise DeviceBusy(f"device {device_id} keeps changing; try again")

    # -- revoked users --------------------------------------------------------------------

    def user_revoked_at(self, user: str) -> str | None:
        doc = self.db.get_or_none(REVOCATION_PREFIX + user)
        value = doc.get("revoked_at") if doc else None
        return value if isinstance(value, str) else None

    def revoke_user(self, user: str, by: str) -> str:
        """Remember the revocation (the latest one counts); returns its time."""
        at = utc_now()
        for _ in range(5):
            doc = self.db.get_or_none(REVOCATION_PREFIX + user) or {
                "_id": REVOCATION_PREFIX + user, "type": "user_revocation", "user": user}
            try:
                self.db.put({**doc, "revoked_at": at, "revoked_by": by})
                return at
            except CouchConflict:
                continue
        raise DeviceBusy(f"the revocation record of {user} keeps changing; try again")
