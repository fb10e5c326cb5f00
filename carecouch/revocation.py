"""Revoking access: a lost device, a user who must lose access, expired credentials.

Shared by the bridge's API and ``carecouch credentials``, so a revocation does the same
things, and leaves the same audit entries, whoever asks for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .audit import AuditEvent, AuditLog
from .couch import CouchClient
from .credentials import CredentialStore, Session
from .devices import Device, DeviceRegistry


@dataclass(frozen=True)
class Revoked:
    subject: str
    deleted: list[str]  # CouchDB user names deleted
    device: Device | None = None
    revoked_at: str | None = None


def revoke_device(admin: CouchClient, device_id: str, actor: str, *,
                  device: Device | None = None) -> Revoked | None:
    """Mark the device revoked and delete every CouchDB user it holds; None if unknown."""
    devices = DeviceRegistry(admin)
    known = device or devices.get(device_id)
    if known is None:
        return None
    revoked = devices.revoke(device_id, actor)
    store = CredentialStore(admin)
    deleted = [s.name for s in store.sessions_of_device(device_id) if store.delete(s.name)]
    AuditLog(admin, actor).record_many([
        AuditEvent("device.revoke", device_id, {"enrolled_by": known.enrolled_by}),
        AuditEvent("credentials.revoke", device_id, {"reason": "device revoked",
                                                     "deleted": deleted})])
    return Revoked(device_id, deleted, device=revoked or known)


def revoke_user(admin: CouchClient, user: str, actor: str) -> Revoked:
    """Delete every CouchDB user ``user`` holds; identity tokens issued before now are
    refused from now on (a stolen token dies with the revocation)."""
    revoked_at = DeviceRegistry(admin).revoke_user(user, actor)
    store = CredentialStore(admin)
    deleted = [s.name for s in store.sessions(user=user) if store.delete(s.name)]
    AuditLog(admin, actor).record("credentials.revoke", user, {
        "reason": "user revoked", "deleted": deleted, "revoked_at": revoked_at})
    return Revoked(user, deleted, revoked_at=revoked_at)


def reap(admin: CouchClient, actor: str, *, dry_run: bool = False) -> list[Session]:
    """Delete expired credentials, each one audited (``credentials.reap``)."""
    reaped = CredentialStore(admin).reap(dry_run=dry_run)
    if reaped and not dry_run:
        AuditLog(admin, actor).record_many([AuditEvent("credentials.reap", s.user, {
            "name": s.name, "device": s.device, "expires_at": s.expires_at})
            for s in reaped])
    return reaped
