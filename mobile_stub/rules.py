"""The record rules on the device: every edit is checked, at once and offline, by the same
``validate_doc_update`` the server will run on it (:mod:`carecouch.rules`).

Which rules: the caseload's own design document, as the device last read it from the server
(every sync reads it: one request; only an admin can change it). Before the device has ever
read it, the rules this software ships stand in; a database the server holds no rules for
(``learn(db, None)``) is checked by nothing, as on the server.

Called as the server will call it when the edit is pushed: ``newDoc`` is the new revision
with its ``_revisions`` history, ``oldDoc`` the revision it edits (a tombstone when it
continues a deleted branch), ``userCtx`` the session's CouchDB user and roles.

What the device cannot know, it says (``Verdict.unchecked``), and the server decides at the
next sync:
- the session's roles, before the device learned them (a store that has never synced and has
  no bridge session): the rules run as if the writer held a role the type admits, so
  ``auth.role_required`` and ``auth.type_not_granted`` wait for the server;
- the server checks a pushed revision against the nearest revision *it* holds: when several
  offline edits of one record are pushed together, it compares the last with the one before
  them all, the device each with the one before it;
- the lease a server holds now (another clinician's, after a re-grant): the device checks the
  lease of the revision it edits (and its lease token, :mod:`.policy`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from carecouch.ddocs import MAIN_DDOC_ID, canonical_json
from carecouch.records import Registry
from carecouch.revs import revisions_object
from carecouch.rules import Rules, shipped_rules

from .errors import RecordRefused
from .store.device import DeviceStore
from .store.documents import Doc, LocalDatabase

NO_RULES = "none"
_compiled: dict[str, Rules] = {}  # content hash -> compiled rules (compiling costs ~10 ms)


def _rules_key(database: str) -> str:
    return f"rules:{database}"


def _roles_key(username: str) -> str:
    return f"session_roles:{username}"


@dataclass(frozen=True)
class Verdict:
    unchecked: tuple[str, ...] = field(default=())  # rules the server decides at sync

    def to_json(self) -> dict[str, Any]:
        return {"unchecked": list(self.unchecked)}


def learn(store: DeviceStore, database: str, ddoc: Mapping[str, Any] | None,
          user_ctx: Mapping[str, Any] | None = None) -> None:
    """Keep what the server says, at every contact: the caseload's design document (None: it
    has none) and the session's ``userCtx`` (its CouchDB roles)."""
    value = NO_RULES if ddoc is None else canonical_json(dict(ddoc))
    if store.get_meta(_rules_key(database)) != value:
        store.set_meta(_rules_key(database), value)
    name = (user_ctx or {}).get("name")
    roles = (user_ctx or {}).get("roles")
    if isinstance(name, str) and isinstance(roles, list):
        store.set_meta(_roles_key(name), json.dumps(sorted(map(str, roles))))


def compiled(ddoc: Mapping[str, Any]) -> Rules:
    key = hashlib.sha256(canonical_json(dict(ddoc)).encode()).hexdigest()
    if key not in _compiled:
        _compiled[key] = Rules(ddoc)
    return _compiled[key]


class DeviceRules:
    """The rules of each database the store holds, and the identity they are checked as."""

    def __init__(self, store: DeviceStore, registry: Registry,
                 packaged: Callable[[], Rules] = shipped_rules) -> None:
        self.store = store
        self.registry = registry
        self._packaged = packaged

    def rules_for(self, database: str) -> Rules | None:
        raw = self.store.get_meta(_rules_key(database))
        if raw == NO_RULES:
            return None
        if raw is None:
            return self._packaged()
        return compiled(json.loads(raw))

    def source(self, database: str) -> str:
        """For ``status``: which rules the device checks this database's edits with."""
        raw = self.store.get_meta(_rules_key(database))
        if raw == NO_RULES:
            return "none (the server has no rules for this database)"
        if raw is None:
            return "the rules this software ships (not yet read from the server)"
        version = (json.loads(raw).get("carecouch") or {}).get("version")
        return f"the server's {MAIN_DDOC_ID}" + (f" ({version[:12]})" if version else "")

    # -- the check ----------------------------------------------------------------------------

    def check(self, local: LocalDatabase, doc: Mapping[str, Any], username: str,
              roles: list[str] | None) -> Verdict:
        """Raise :class:`RecordRefused` if the server's rules would refuse saving ``doc``."""
        rules = self.rules_for(local.name)
        if rules is None:
            return Verdict()
        roles = roles if roles is not None else self._learned_roles(username)
        unchecked: tuple[str, ...] = ()
        if roles is None:
            roles = self._admitting_roles(str(doc.get("type")))
            unchecked = ("auth.role_required", "auth.type_not_granted")
        edit = local.plan_edit(doc)
        history = [edit.rev, *(local.history(edit.doc_id, edit.parent) if edit.parent else [])]
        new_doc: Doc = {**edit.body, "_id": edit.doc_id, "_rev": edit.rev,
                        "_revisions": revisions_object(history)}
        if edit.deleted:
            new_doc["_deleted"] = True
        old_doc = _stubbed(local.get(edit.doc_id, edit.parent)) if edit.parent else None
        new_doc = _stubbed(new_doc)
        user_ctx = {"db": local.name, "name": username, "roles": list(roles)}
        refusal = rules.check(new_doc, old_doc, user_ctx)
        if refusal is not None and refusal.code not in unchecked:
            raise RecordRefused(refusal)
        return Verdict(unchecked)

    def _learned_roles(self, username: str) -> list[str] | None:
        raw = self.store.get_meta(_roles_key(username))
        return None if raw is None else list(json.loads(raw))

    def _admitting_roles(self, record_type: str) -> list[str]:
        spec = self.registry.types.get(record_type)
        return list(spec.writers) if spec is not None else []


def _stubbed(doc: Doc) -> Doc:
    """Attachments as CouchDB hands them to validate_doc_update: stubs, never the data."""
    atts = doc.get("_attachments")
    if not isinstance(atts, dict):
        return doc
    stubs = {name: {k: v for k, v in att.items() if k != "data"} | {"stub": True}
             for name, att in atts.items() if isinstance(att, dict)}
    return {**doc, "_attachments": stubs}
