"""The device's policy hook: asked before every sync and every local edit.

Today everything is allowed. With the bridge, the device will hold the bridge's signed policy
snapshot and enforce it offline here (which caseloads may sync, which record types this user
may write, lease tokens for exclusive records); the replicator and the edit path already call
these two methods, so the snapshot slots in without touching them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class DevicePolicy(Protocol):
    def check_sync(self, database: str) -> None:
        """Raise :class:`~mobile_stub.errors.PolicyRefused` to stop a sync of ``database``."""
        ...

    def check_edit(self, database: str, doc: Mapping[str, Any]) -> None:
        """Raise :class:`~mobile_stub.errors.PolicyRefused` to refuse a local edit."""
        ...


class AllowAll:
    """No policy yet (before enrolment through the bridge)."""

    def check_sync(self, database: str) -> None:
        return None

    def check_edit(self, database: str, doc: Mapping[str, Any]) -> None:
        return None
