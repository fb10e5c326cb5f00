"""A CouchDB replication protocol client whose target (pull) and source (push) is the device
store. See docs/device.md for the protocol steps as the device performs them."""

from carecouch.sync_states import SyncState

from .checkpoints import CheckpointTrust
from .filters import ReplicationFilter
from .pull import PullOptions
from .push import PushOptions
from .remote import RetryPolicy
from .replicator import Replicator, ReplicatorOptions, checkpoint_restarts, last_sync
from .status import ReplicationStats, SyncReport, SyncStopped

__all__ = ["CheckpointTrust", "PullOptions", "PushOptions", "ReplicationFilter",
           "ReplicationStats", "Replicator", "ReplicatorOptions", "RetryPolicy", "SyncReport",
           "SyncState", "SyncStopped", "checkpoint_restarts", "last_sync"]
