"""The policy snapshot as the device trusts it (the claims: :mod:`carecouch.snapshot`).

It is verified every time it is read, against the keys pinned at enrolment: a snapshot edited
in the store, or issued for another device, is never trusted.
"""

from __future__ import annotations

from carecouch.snapshot import SNAPSHOT_TYPE, Snapshot

from .errors import TokenRefused
from .trust import PinnedKeys

__all__ = ["Snapshot", "verify_snapshot"]


def verify_snapshot(token: str, keys: PinnedKeys, device_id: str) -> Snapshot:
    """The snapshot in ``token``; :class:`TokenRefused` unless a pinned key signed it for this
    device."""
    claims = keys.verify(token, SNAPSHOT_TYPE, "the policy snapshot")
    try:
        snapshot = Snapshot.from_claims(claims)
    except (KeyError, TypeError, ValueError) as exc:
        raise TokenRefused(f"the policy snapshot is malformed ({exc})") from exc
    if snapshot.device != device_id:
        raise TokenRefused(f"the policy snapshot is for device {snapshot.device}, not this one")
    return snapshot
