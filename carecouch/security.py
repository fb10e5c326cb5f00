"""Database ``_security`` objects: what each kind of carecouch database must carry.

Database membership is the read boundary (docs/design.md, "Databases and roles"), so the
security object is compared strictly: any member name or role beyond the expected ones counts
as drift and is removed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .couch import CouchClient, Doc
from .ids import BRIDGE_ROLE, member_role


def admin_only() -> Doc:
    """Server admins only, spelt out (docs/decisions.md).

    Never left empty: an empty object is public on some servers, and CouchDB 3 reads it as
    admin-only only by configuration.
    """
    return {"admins": {"roles": ["_admin"]}, "members": {"roles": ["_admin"]}}


def caseload_security(caseload_id: str, *, archived: bool = False) -> Doc:
    """Members by the caseload role, and the bridge (it writes leases into exclusive records as
    its own CouchDB user); an archived caseload is admin-only (data kept)."""
    if archived:
        return admin_only()
    return {"admins": {"roles": ["_admin"]},
            "members": {"roles": [member_role(caseload_id), BRIDGE_ROLE]}}


def _normal(section: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if not isinstance(section, Mapping):
        return (), ()
    names = section.get("names") or []
    roles = section.get("roles") or []
    return tuple(sorted(map(str, names))), tuple(sorted(map(str, roles)))


def same_security(current: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> bool:
    """Equal as CouchDB reads them (absent ``names`` = empty, order of roles irrelevant)."""
    current = current or {}
    return all(_normal(current.get(part)) == _normal(wanted.get(part))
               for part in ("admins", "members"))


def ensure_admin_only_db(client: CouchClient, name: str) -> bool:
    """Create ``name`` if missing and make it admin-only; returns True if anything was written.

    The security object goes on right after the database is created: a server that treats an
    empty ``_security`` as public (the embedded one, for now) must never serve it so.
    """
    db = client.db(name)
    if db.exists() and same_security(db.get_security(), admin_only()):
        return False
    db.create(exist_ok=True)
    db.put_security(admin_only())
    return True
