"""Caseload ids and the names derived from them (docs/decisions.md, "Names").

Every program checks ids here, so a caseload id means the same thing to the CLI, the bridge and
the device, and a bad one is refused before anything is written.
"""

from __future__ import annotations

import re

from .errors import CarecouchError

MAX_ID_LENGTH = 48
# Checked with fullmatch: with match, "$" also accepts a trailing newline ("north\n").
CASELOAD_ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_ALLOWED = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")
RULE = "use 1-48 lowercase letters, digits and '-', starting and ending with a letter or digit"


class InvalidCaseloadId(CarecouchError, ValueError):
    """An id that breaks the naming rule; ``str`` names the id, the problem and the rule."""

    def __init__(self, value: str, problem: str) -> None:
        super().__init__(f"bad caseload id {value!r}: {problem}; {RULE}")
        self.value = value
        self.problem = problem


def check_caseload_id(value: object) -> str:
    """Return ``value`` if it is a valid caseload id, else raise :class:`InvalidCaseloadId`."""
    if not isinstance(value, str):
        raise InvalidCaseloadId(str(value), "not text")
    if CASELOAD_ID_PATTERN.fullmatch(value) and len(value) <= MAX_ID_LENGTH:
        return value
    raise InvalidCaseloadId(value, _problem(value))


def _problem(value: str) -> str:
    # Name the first thing wrong, so the person fixing a manifest knows what to change.
    if not value:
        return "empty"
    if len(value) > MAX_ID_LENGTH:
        return f"{len(value)} characters long"
    bad = sorted({c for c in value if c not in _ALLOWED})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        return f"{'character' if len(bad) == 1 else 'characters'} {shown} not allowed"
    return "must start and end with a letter or digit"


def caseload_db(caseload_id: str) -> str:
    """``north-1`` -> ``caseload_north-1``."""
    return f"caseload_{caseload_id}"


def member_role(caseload_id: str) -> str:
    """The role that makes a CouchDB user a member of the caseload database."""
    return f"caseload:{caseload_id}"


def registry_doc_id(caseload_id: str) -> str:
    """The caseload's document id in ``carecouch_registry``."""
    return f"caseload:{caseload_id}"


# -- people, devices and their CouchDB accounts (docs/bridge.md) --------------------------

BRIDGE_ROLE = "carecouch:bridge"
RESOLVER_ROLE = "carecouch:resolver"
CLINICAL_PREFIX = "clinical:"
# Roles that narrow the record types a device session may write (authorship.js reads them):
# the marker says "narrowed", each ``carecouch:writes:<type>`` grants one type.
WRITES_RESTRICTED_ROLE = "carecouch:writes-restricted"
WRITES_PREFIX = "carecouch:writes:"
SESSION_SEPARATOR = "~"
# A role that holds in one caseload only: "clinical:nurse@north-1" (common.js hasRoleHere).
SCOPE_SEPARATOR = "@"
USERS_DB = "_users"
USER_DOC_PREFIX = "org.couchdb.user:"

# No "~" (it separates user and device in a session name, and the rules split on the last
# one) and no ":" (CouchDB user ids are "org.couchdb.user:<name>"); no leading "_" or ".".
USER_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")
DEVICE_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")


class InvalidName(CarecouchError, ValueError):
    """A user or device id that cannot become part of a CouchDB user name."""


def check_user_id(value: object) -> str:
    if isinstance(value, str) and USER_ID_PATTERN.fullmatch(value):
        return value
    raise InvalidName(f"bad user id {str(value)[:120]!r}: use 1-100 letters, digits and "
                      "'.', '_', '@', '+', '-', starting with a letter or digit")


def check_device_id(value: object) -> str:
    if isinstance(value, str) and DEVICE_ID_PATTERN.fullmatch(value):
        return value
    raise InvalidName(f"bad device id {str(value)[:120]!r}: use 3-64 letters, digits and "
                      "'.', '_', '-', starting with a letter or digit")


def scoped_role(role: str, caseload_id: str) -> str:
    """``clinical:nurse`` in caseload ``north-1``: ``clinical:nurse@north-1``. The record
    rules honour it in ``caseload_north-1`` only (roles belong to a CouchDB user, not to a
    database, so the caseload is written into the role)."""
    return f"{role}{SCOPE_SEPARATOR}{caseload_id}"


def session_name(user: str, device: str) -> str:
    """The CouchDB user of one clinician on one device: ``alice~tablet-7``."""
    return f"{user}{SESSION_SEPARATOR}{device}"


def split_session_name(name: str) -> tuple[str, str] | None:
    """``alice~tablet-7`` -> (``alice``, ``tablet-7``); None for any other name."""
    user, sep, device = name.rpartition(SESSION_SEPARATOR)
    return (user, device) if sep and user and device else None


def user_doc_id(name: str) -> str:
    return f"{USER_DOC_PREFIX}{name}"
