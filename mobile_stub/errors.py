"""What can go wrong on a device, as named errors; the CLI turns each into one line."""

from __future__ import annotations

from carecouch.errors import CarecouchError


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
    """The device's policy (later: the bridge's signed snapshot) does not allow this."""


class FilterUnsupported(DeviceError):
    """The server cannot run the replication filter handed out (e.g. ``_selector``)."""


class RejectionNotFound(DeviceError, KeyError):
    __str__ = DeviceError.__str__


class RecoveryUnavailable(DeviceError):
    """The server's reason for a rejection names no automatic recovery."""
