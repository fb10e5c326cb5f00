"""What can go wrong on a device, as named errors; the CLI turns each into one line."""

from __future__ import annotations

from carecouch.errors import CarecouchError
from carecouch.rules import Refusal


class DeviceError(CarecouchError):
    """Base of the device's own errors."""


class StoreMissing(DeviceError):
    """No device store at the given path (run ``carecouch-device init``)."""


class StoreExists(DeviceError):
    """``init`` on a path that already holds a store."""


class StoreLocked(DeviceError):
    """Patient data was asked for, but the store was opened without its passphrase."""


class WrongPassphrase(DeviceError):
    """The passphrase does not unwrap this store's data key."""


class StoreWiped(DeviceError):
    """The store's key was destroyed; its data cannot be read any more."""


class BadRecord(DeviceError, ValueError):
    """An edit that cannot be right whatever the policy (unknown type, a status the record's
    type does not have)."""


class SecretDamaged(DeviceError):
    """A sealed secret in the store does not open: damaged or tampered with."""


class UnknownDatabase(DeviceError):
    """The store holds no local copy of that database."""


class DocumentNotFound(DeviceError, KeyError):
    """No such document (or revision) in the local store."""

    __str__ = DeviceError.__str__


class LocalConflict(DeviceError):
    """A local edit named a base revision that is not a current leaf (edit the latest)."""


class DeviceOffline(DeviceError, ConnectionError):
    """The device is in offline mode: the replicator refuses the network."""


class PolicyRefused(DeviceError, PermissionError):
    """The device's policy (the bridge's signed snapshot, a lease token) does not allow this."""


class RejectionNotFound(DeviceError, KeyError):
    __str__ = DeviceError.__str__


class RecoveryUnavailable(DeviceError):
    """The server's reason for a rejection names no automatic recovery."""


# -- the bridge ---------------------------------------------------------------------------


class NotEnrolled(DeviceError):
    """The store has no device key registered with a bridge (run ``carecouch-device enrol``)."""


class AlreadyEnrolled(DeviceError):
    """``enrol`` on a store that is already enrolled with a bridge."""


class NotLoggedIn(DeviceError):
    """Enrolled, but no credentials from the bridge yet (run ``carecouch-device login``)."""


class TokenRefused(PolicyRefused):
    """A snapshot or lease token that does not verify against the pinned bridge key, or says
    something other than what it must (tampered, another bridge's, another device's)."""


class BridgeError(DeviceError):
    """The bridge refused a request; ``code`` is its stable error code (docs/bridge.md)."""

    def __init__(self, message: str, *, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class BridgeUnreachable(BridgeError, ConnectionError):
    """No answer from the bridge (network, DNS, refused connection, timeout)."""


class DeviceRevoked(BridgeError):
    """The bridge says this device was revoked: it must wipe itself."""


class RecordRefused(DeviceError):
    """The record rules (the server's own, run on the device) refuse an edit: nothing was
    saved. ``refusal`` holds the server's reason and every problem found."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal_line(refusal))
        self.refusal = refusal


# What the device adds to a rule's message when it knows why (the rule cannot).
HINTS = {"every record needs clock_offset_ms": "every record needs clock_offset_ms (this "
         "device has not yet talked to the server, so it does not know how far its clock is "
         "off: sync once, or run `init` online)"}


def refusal_line(refusal: Refusal) -> str:
    """One line for the command line: every problem, the server's first."""
    problems = "; ".join(f"{p.code}: {HINTS.get(p.message, p.message)}"
                         for p in refusal.problems)
    return (f"the record rules refuse this record (the server would too): "
            f"{problems or refusal.reason}")
