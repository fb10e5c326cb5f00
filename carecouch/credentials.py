"""Device-session credentials: short-lived CouchDB users the bridge creates, rotates and deletes.

Each clinician on each device holds one CouchDB user, ``<user>~<device>`` (the record rules
read the clinician and the device from the name), with a random password, the roles the
policy grants, and ``carecouch.expires_at``. CouchDB itself knows nothing of expiry: a
credential stops working when its user document is deleted, by revocation at once, or by the
reaper (:func:`reap`) soon after it expires (docs/bridge.md says how soon).

Only user documents carrying the ``carecouch`` marker are ever changed or deleted here, so a
person's own CouchDB account that happens to share a name is never touched.

The user documents are written already hashed (:func:`hashed_password`): CouchDB stores the
hash fields an admin sends as they are, and pays no hashing of its own for a device session
(docs/deployment.md, "Password hashing").
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .clock import format_utc
from .couch import CouchClient, Doc
from .errors import CarecouchError, CouchConflict, CouchNotFound
from .ids import (
    USER_DOC_PREFIX,
    USERS_DB,
    session_name,
    user_doc_id,
)

MARKER = "carecouch"
PAGE = 500
PASSWORD_BYTES = 32
# PBKDF2-SHA256 cost of a device-session password. The password is 32 bytes from the OS's
# CSPRNG (256 bits), so a guess succeeds with probability 2^-256 whatever the cost: stretching
# multiplies an attacker's work per guess, and 2^256 guesses are out of reach at one
# iteration or at 600,000 (1,000 adds 10 bits, 600,000 adds 19). Stretching exists for
# passwords people choose (~20-40 bits). 1,000 iterations cost CouchDB ~0.3 ms per check it
# cannot answer from its password cache, where 600,000 cost ~200-300 ms of a core; and they
# stay far above 1, which some tools read as "unhashed".
HASH_ITERATIONS = 1000
HASH_PRF = "sha256"
SALT_BYTES = 16


def hashed_password(password: str, *, iterations: int = HASH_ITERATIONS) -> dict[str, Any]:
    """The `_users` fields that let CouchDB 3.5 check ``password`` without ever holding it.

    couch_users_db:save_doc/1 stores a user document that has no ``password`` as it is sent
    (an admin may write the hash fields); couch_httpd_auth:authenticate_int_pbkdf2/3 then
    derives ``pbkdf2_prf`` PBKDF2 of the password with ``salt`` (used as the bytes of its
    text) and ``iterations``, and compares the hex with ``derived_key``. The salt is new on
    every call: CouchDB's password cache is keyed by user name and salt, so a rotation that
    kept the salt would let the old password work from the cache for up to its idle time.
    """
    salt = secrets.token_hex(SALT_BYTES)  # 32 hex digits, as couch_uuids:random/0 makes
    key = hashlib.pbkdf2_hmac(HASH_PRF, password.encode(), salt.encode(), iterations)
    return {"password_scheme": "pbkdf2", "pbkdf2_prf": HASH_PRF, "iterations": iterations,
            "salt": salt, "derived_key": key.hex()}


class CredentialsError(CarecouchError):
    """A credential cannot be issued (e.g. the name belongs to an account carecouch did not
    create)."""


class CredentialsBusy(CarecouchError):
    """The user document kept changing under us (concurrent requests for one session): the
    caller may simply try again."""


@dataclass(frozen=True)
class Session:
    """One device-session CouchDB user, as ``_users`` holds it."""

    name: str
    user: str
    device: str
    roles: tuple[str, ...]
    issued_at: str
    expires_at: str
    break_glass: Mapping[str, Any] | None

    @classmethod
    def from_doc(cls, doc: Doc) -> Session | None:
        meta = doc.get(MARKER)
        if not isinstance(meta, dict) or doc.get("_deleted"):
            return None
        return cls(name=str(doc.get("name")), user=str(meta.get("user")),
                   device=str(meta.get("device")), roles=tuple(doc.get("roles") or ()),
                   issued_at=str(meta.get("issued_at")), expires_at=str(meta.get("expires_at")),
                   break_glass=meta.get("break_glass"))

    def expired(self, now: datetime) -> bool:
        return self.expires_at <= format_utc(now)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "user": self.user, "device": self.device,
                "roles": list(self.roles), "issued_at": self.issued_at,
                "expires_at": self.expires_at, "break_glass": self.break_glass}


@dataclass(frozen=True)
class Issued:
    name: str
    password: str = field(repr=False)  # never in a log line or a traceback
    roles: tuple[str, ...]
    issued_at: str
    expires_at: str
    replaced: bool  # an earlier credential of the same name had its password changed


class CredentialStore:
    """``_users`` as the server admin sees it."""

    def __init__(self, admin: CouchClient) -> None:
        self.users = admin.db(USERS_DB)

    def issue(self, user: str, device: str, roles: list[str], lifetime: int, *,
              now: datetime | None = None, extra: Mapping[str, Any] | None = None,
              exists: bool = True) -> Issued:
        """Create ``<user>~<device>``, or give it a new password and roles (the old password
        stops working at once: rotation).

        ``exists`` says whether the user document probably exists (the device held this
        user's session before): then it is read first, to rotate it; otherwise it is created
        in one request, and read only if CouchDB says it exists after all.
        """
        now = now or datetime.now(UTC)
        name = session_name(user, device)
        expires = now + timedelta(seconds=lifetime)
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        meta = {"user": user, "device": device, "issued_at": format_utc(now),
                "expires_at": format_utc(expires), **(extra or {})}
        existing: Doc | None = None
        for _ in range(5):
            if exists:
                existing = self.users.get_or_none(user_doc_id(name))
                if existing is not None and not isinstance(existing.get(MARKER), dict):
                    raise CredentialsError(f"CouchDB user {name} exists and was not made by "
                                           "carecouch; refusing to change it")
            doc: Doc = {"_id": user_doc_id(name), "name": name, "type": "user",
                        "roles": list(roles), **hashed_password(password), MARKER: meta}
            if existing is not None:
                doc["_rev"] = existing["_rev"]
            try:
                self.users.put(doc)
            except CouchConflict:
                exists = True  # it exists, or was issued concurrently: read and try again
                continue
            return Issued(name, password, tuple(roles), meta["issued_at"], meta["expires_at"],
                          replaced=existing is not None)
        raise CredentialsBusy(f"CouchDB user {name} keeps changing; try again")

    def delete(self, name: str, *, expired_at: datetime | None = None) -> bool:
        """Delete one carecouch session user; True if it existed.

        With ``expired_at``, only if it has expired by then: the reaper must not delete a
        credential that was re-issued after it listed the expired ones.
        """
        for _ in range(5):
            doc = self.users.get_or_none(user_doc_id(name))
            session = Session.from_doc(doc) if doc is not None else None
            if doc is None or session is None:
                return False
            if expired_at is not None and not session.expired(expired_at):
                return False
            try:
                self.users.delete(doc["_id"], doc["_rev"])
                return True
            except CouchNotFound:
                return False
            except CouchConflict:
                continue
        raise CredentialsBusy(f"CouchDB user {name} keeps changing; could not delete it")

    def sessions(self, *, user: str | None = None) -> Iterator[Session]:
        """Every session user (of ``user`` only: one range read)."""
        start = USER_DOC_PREFIX + (session_name(user, "") if user else "")
        end = start + "\ufff0"
        while True:
            rows = self.users.all_docs(startkey=start, endkey=end, include_docs=True,
                                       limit=PAGE)["rows"]
            for row in rows:
                session = Session.from_doc(row.get("doc") or {})
                if session is not None and (user is None or session.user == user):
                    yield session
            if len(rows) < PAGE:
                return
            start = rows[-1]["id"] + "\u0000"

    def sessions_of_device(self, device: str) -> list[Session]:
        return [s for s in self.sessions() if s.device == device]

    def reap(self, now: datetime | None = None, *, dry_run: bool = False) -> list[Session]:
        """Delete every session user whose expiry has passed; returns them."""
        now = now or datetime.now(UTC)
        expired = [s for s in self.sessions() if s.expired(now)]
        if not dry_run:
            expired = [s for s in expired if self._reap_one(s.name, now)]
        return expired

    def _reap_one(self, name: str, now: datetime) -> bool:
        try:
            return self.delete(name, expired_at=now)
        except CredentialsBusy:  # being re-issued right now; the next pass looks again
            return False
