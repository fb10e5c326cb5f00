"""Who is resolving: the CouchDB account the CLI runs as, read the way the record rules do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from carecouch.couch import CouchClient

SESSION_SEPARATOR = "~"
# `device` is required on every record; an account without a device binding (a server admin,
# a resolver's desk account) writes as this fixed name, never a host name, so that a merge is
# the same whichever machine ran it.
DESKTOP_DEVICE = "carecouch-cli"


@dataclass(frozen=True)
class Resolver:
    account: str  # the CouchDB user name
    user: str  # what `author` must say (common.js writerOf)
    device: str
    clock_offset_ms: int = 0  # server minus this machine, for the resolution record


def resolver_for(account: str | None, clock_offset_ms: int = 0) -> Resolver:
    """``alice~laptop`` -> user ``alice`` on device ``laptop``; ``alice`` -> no device."""
    name = account or "anonymous"
    at = name.rfind(SESSION_SEPARATOR)
    if 0 < at < len(name) - 1:
        return Resolver(name, name[:at], name[at + 1:], clock_offset_ms)
    return Resolver(name, name, DESKTOP_DEVICE, clock_offset_ms)


def measure_offset(client: CouchClient) -> int:
    """Server clock minus ours, from the ``Date`` of one answer (whole seconds, so +-1 s)."""
    before = datetime.now(UTC)
    header = client.server_date()
    after = datetime.now(UTC)
    if not header:
        return 0
    try:
        server = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return 0
    # The header is truncated to the second: its true value is on average 0.5 s later.
    midpoint = before + (after - before) / 2
    return round(((server - midpoint).total_seconds() + 0.5) * 1000)


def current_resolver(client: CouchClient) -> Resolver:
    return resolver_for(client.user, measure_offset(client))
