"""Where the replicator gets its CouchDB user from.

An enrolled device uses its bridge session (:class:`mobile_stub.session.BridgeSession`):
``current`` is the short-lived user the bridge issued, ``renew`` asks the bridge for a fresh
one after a 401. A store that is not enrolled (development against a plain CouchDB) uses
:class:`StaticCredentials` (``CARECOUCH_DEVICE_USER`` / ``CARECOUCH_DEVICE_PASSWORD`` in the
CLI), and tests may pass their own provider; the replicator does not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    expires_at: str | None = None   # ISO 8601 UTC, as the bridge returns it
    roles: tuple[str, ...] | None = None  # the CouchDB roles, when the issuer said them

    def __repr__(self) -> str:  # never print a password into a log
        return f"Credentials(username={self.username!r}, expires_at={self.expires_at!r})"


class CredentialsProvider(Protocol):
    def current(self) -> Credentials:
        """The credentials to use now."""
        ...

    def renew(self) -> Credentials | None:
        """Called once after the server answered 401; ``None`` when no renewal is possible."""
        ...


class StaticCredentials:
    """One fixed user; cannot renew (a 401 stops the replicator)."""

    def __init__(self, username: str, password: str) -> None:
        self._credentials = Credentials(username, password)

    def current(self) -> Credentials:
        return self._credentials

    def renew(self) -> Credentials | None:
        return None
