"""How a sync ended, and the counters CouchDB keeps in a checkpoint's history."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from carecouch.sync_states import SyncState

from ..errors import DeviceError
from ..working_set import Removed


class SyncStopped(DeviceError):
    """A replication stopped before finishing; it resumes from its checkpoint next time."""

    def __init__(self, state: SyncState, message: str) -> None:
        super().__init__(message)
        self.state = state


@dataclass
class ReplicationStats:
    """Per-session counters, as named in CouchDB's checkpoint history."""

    missing_checked: int = 0
    missing_found: int = 0
    docs_read: int = 0
    docs_written: int = 0
    doc_write_failures: int = 0

    def to_json(self) -> dict[str, int]:
        return asdict(self)

    def __add__(self, other: ReplicationStats) -> ReplicationStats:
        return ReplicationStats(**{k: v + getattr(other, k) for k, v in asdict(self).items()})


@dataclass
class SyncReport:
    database: str
    state: SyncState = SyncState.OK
    message: str = ""
    started_at: str = ""
    ended_at: str = ""
    pull: ReplicationStats = field(default_factory=ReplicationStats)
    urgent: ReplicationStats = field(default_factory=ReplicationStats)  # pulled first
    push: ReplicationStats = field(default_factory=ReplicationStats)
    # How each direction's checkpoint was judged (checkpoints.py): a restart from the
    # beginning because the server's copy was missing or altered is shown by `status`.
    checkpoints: dict[str, str] = field(default_factory=dict)
    rejected: int = 0            # writes the server refused in this sync
    retries: int = 0             # transient failures retried
    renewed_credentials: bool = False
    reached: bool = False        # the server answered at least once
    # Each write the server refused in this sync: {"id", "rev", "error", "reason", "code"}.
    refused: list[dict[str, str]] = field(default_factory=list)
    # What the pass after the sync removed from the device (mobile_stub/working_set.py).
    removed: Removed | None = None

    @property
    def ok(self) -> bool:
        return self.state in (SyncState.OK, SyncState.RELEASED)

    def to_json(self, *, reasons: bool = True) -> dict[str, Any]:
        """``reasons=False`` for what is kept in the clear (``last_sync``): a rule's reason may
        quote clinical content, so only the sealed rejection log keeps it."""
        refused = self.refused if reasons else [
            {k: v for k, v in r.items() if k != "reason"} for r in self.refused]
        return {"database": self.database, "state": self.state.value, "message": self.message,
                "started_at": self.started_at, "ended_at": self.ended_at,
                "pull": self.pull.to_json(), "urgent": self.urgent.to_json(),
                "push": self.push.to_json(),
                "checkpoints": {k: str(v) for k, v in self.checkpoints.items()},
                "rejected": self.rejected, "refused": refused, "retries": self.retries,
                "renewed_credentials": self.renewed_credentials, "reached": self.reached,
                "removed": (self.removed or Removed()).to_json()}
