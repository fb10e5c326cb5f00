"""Caseload ids and the names derived from them (docs/decisions.md, "Names").

Every program checks ids here, so a caseload id means the same thing to the CLI, the bridge and
the device, and a bad one is refused before anything is written.
"""

from __future__ import annotations

import re

from .errors import CarecouchError

MAX_ID_LENGTH = 48
_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
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
    if _ID.match(value) and len(value) <= MAX_ID_LENGTH:
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
