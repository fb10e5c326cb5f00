"""How a device's sync ended, as the device reports it and the fleet reads it
(docs/fleet.md): one definition for the reference device (``mobile_stub``) and the bridge."""

from __future__ import annotations

from enum import StrEnum


class SyncState(StrEnum):
    OK = "ok"                                   # pulled and pushed everything it could
    OFFLINE = "offline"                         # device in offline mode: no request sent
    UNAUTHORIZED = "unauthorized"               # 401 after one renewal: needs a new login
    FORBIDDEN = "forbidden"                     # 403 on a whole request (not one document)
    UNREACHABLE = "unreachable"                 # transient failures outlasted the retries
    POLICY = "policy"                           # the device policy refused the sync
    RELEASED = "released"                       # caseload no longer granted: removed
    FILTER_UNSUPPORTED = "filter_unsupported"   # the server cannot run the handed-out filter
    FAILED = "failed"                           # any other server error (e.g. no such db)


# The states a sync report may carry: all but "offline" (a device in offline mode sends
# nothing and records nothing). "released": the caseload left the device's working set and its
# records left the device, as the policy asked.
REPORTED_STATES = (SyncState.OK, SyncState.RELEASED, SyncState.UNAUTHORIZED,
                   SyncState.FORBIDDEN, SyncState.UNREACHABLE, SyncState.POLICY,
                   SyncState.FILTER_UNSUPPORTED, SyncState.FAILED)
# The states in which a sync ran to its end.
COMPLETED_STATES = (SyncState.OK, SyncState.RELEASED)


class SyncResult(StrEnum):
    """A reported sync in one word, as the fleet counts it."""

    OK = "ok"            # completed, nothing refused
    REFUSED = "refused"  # completed, but the server refused some record
    STOPPED = "stopped"  # did not complete
