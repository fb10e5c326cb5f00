"""The device's encrypted local store (SQLite): revision trees, checkpoints, rejections."""

from .device import DeviceStore
from .documents import LocalDatabase
from .rejections import Rejection, Rejections
from .replica import IncomingRevision, ReplicaIO

__all__ = ["DeviceStore", "IncomingRevision", "LocalDatabase", "Rejection", "Rejections",
           "ReplicaIO"]
