"""Named errors for everything that can go wrong talking to CouchDB or reading configuration.

Each CouchDB status the project acts on has its own class, so callers write
``except CouchConflict`` instead of comparing numbers. The base classes of the standard
library are mixed in where the meaning matches (a missing document is a ``KeyError``, a
refused login a ``PermissionError``, an unreachable server a ``ConnectionError``).
"""

from __future__ import annotations


class CarecouchError(Exception):
    """Base of every error carecouch raises on purpose; its ``str`` is one line for a user."""


class ConfigError(CarecouchError):
    """A setting is missing or malformed; the program must not start."""


class CouchError(CarecouchError):
    """CouchDB answered with an error status (or could not be reached)."""

    status: int = 0

    def __init__(self, reason: str, *, status: int | None = None, error: str = "",
                 method: str = "", path: str = "") -> None:
        super().__init__(reason)
        if status is not None:
            self.status = status
        self.error = error
        self.reason = reason
        self.method = method
        self.path = path

    def __str__(self) -> str:
        where = f"{self.method} {self.path}: " if self.method else ""
        code = f"{self.status} " if self.status else ""
        kind = f"{self.error}: " if self.error else ""
        return f"{where}{code}{kind}{self.reason}"


class CouchBadRequest(CouchError):
    status = 400


class CouchUnauthorized(CouchError, PermissionError):
    """401: no or wrong credentials (or, on CouchDB, not a member of the database)."""

    status = 401


class CouchForbidden(CouchError, PermissionError):
    """403: authenticated but not allowed; also what a validation function's refusal returns."""

    status = 403


class CouchNotFound(CouchError, KeyError):
    status = 404

    # KeyError quotes its argument in str(); keep the one-line message of CouchError.
    __str__ = CouchError.__str__


class CouchConflict(CouchError):
    """409: the revision given is not the current leaf (someone else wrote first)."""

    status = 409


class CouchPreconditionFailed(CouchError):
    """412: e.g. creating a database that exists."""

    status = 412


class CouchServerError(CouchError):
    """5xx or any status the project does not expect."""


class CouchUnreachable(CouchError, ConnectionError):
    """No HTTP answer at all: refused, reset, timed out, DNS failure."""


STATUS_ERRORS: dict[int, type[CouchError]] = {
    400: CouchBadRequest,
    401: CouchUnauthorized,
    403: CouchForbidden,
    404: CouchNotFound,
    409: CouchConflict,
    412: CouchPreconditionFailed,
}


def error_for_status(status: int) -> type[CouchError]:
    return STATUS_ERRORS.get(status, CouchServerError)
