"""``POST /v1/credentials``: a short-lived CouchDB user for this clinician on this device.

The policy decides the roles, caseloads, record types and replication filter; the response
carries everything a device needs to replicate, and a policy snapshot signed with the bridge's
key that the device enforces while offline. Any earlier credential of the device is rotated
away: the same clinician's password is replaced, another clinician's user is deleted.
``DELETE /v1/users/<user>/credentials`` revokes every credential a user holds.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, Response, jsonify

from carecouch import break_glass as glass
from carecouch import revocation
from carecouch.audit import AuditEvent
from carecouch.clock import format_utc, parse_utc
from carecouch.credentials import CredentialsError, Issued
from carecouch.ddocs import DEVICE_FILTER
from carecouch.devices import Device
from carecouch.ids import InvalidName, caseload_db, check_user_id, session_name
from carecouch.policy import Filter, Grant, Policy
from carecouch.snapshot import SNAPSHOT_TYPE, Snapshot, SnapshotDatabase
from carecouch.working_set import grant_scope, over_limits

from . import inputs
from .auth import policy_and_grant, refuse_if_revoked, require_grant, require_user
from .devices import require_device_and_user, usable
from .errors import ApiError
from .idp import Identity
from .services import services

blueprint = Blueprint("credentials", __name__)


def issue(identity: Identity, device: Device, policy: Policy, grant: Grant, *,
          extra: tuple[str, Filter] | None = None, lifetime: int | None = None,
          break_glass: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create or rotate the device's credential; the response body (also audited)."""
    s = services()
    now = datetime.now(UTC)
    _refuse_if_too_large(grant, now)
    lifetime = lifetime or grant.credential_lifetime
    roles = grant.couch_roles((extra[0],) if extra else ())
    previous = s.devices.set_holder(device, identity.user)
    rotated = []
    if previous and previous != identity.user:
        name = session_name(previous, device.id)
        if s.credentials.delete(name):
            rotated.append(name)
    meta: dict[str, Any] = {"policy_version": policy.version, "rules": list(grant.rules)}
    if break_glass is not None:
        meta["break_glass"] = break_glass
    try:
        # The device held this user's session before: their CouchDB user probably exists.
        issued = s.credentials.issue(identity.user, device.id, roles, lifetime, now=now,
                                     extra=meta, exists=previous == identity.user)
    except CredentialsError as exc:
        raise ApiError(409, "credentials.name_taken", str(exc)) from exc
    _undo_if_revoked_meanwhile(identity, device, issued.name)
    if issued.replaced:
        rotated.append(issued.name)
    databases = _databases(grant, extra, now)
    # Break-glass access is short-lived, and so is the offline work it allows: with the
    # usual offline grace its snapshot would let the device go on for days.
    offline = grant.offline_grace if break_glass is None else min(grant.offline_grace,
                                                                   lifetime)
    snapshot = Snapshot(
        user=identity.user, device=device.id, username=issued.name, iat=int(time.time()),
        issued_at=now, credential_expires_at=parse_utc(issued.expires_at),
        offline_until=now + timedelta(seconds=offline), policy_version=policy.version,
        lease_lifetime_seconds=grant.lease_lifetime, break_glass=break_glass,
        databases=tuple(_snapshot_database(grant, d) for d in databases))
    written = s.audit(identity.user).record_many(_events(identity, device, policy, issued,
                                                         rotated, break_glass))
    if break_glass is not None:
        # The grant's id is its audit entry: the device asks for its review by it.
        break_glass["id"] = next(d["_id"] for d in written if d["action"] == glass.ISSUE)
    return {"couchdb_url": s.settings.public_couchdb_url, "username": issued.name,
            "password": issued.password, "roles": list(issued.roles),
            "issued_at": issued.issued_at, "expires_at": issued.expires_at,
            "server_time": format_utc(datetime.now(UTC)), "databases": databases,
            "rotated": rotated,
            "snapshot": s.signer.sign(snapshot.to_claims(), SNAPSHOT_TYPE),
            "policy_version": policy.version}


def _refuse_if_too_large(grant: Grant, now: datetime) -> None:
    """422 when the policy caps what a device may hold and this grant's working set is more
    (counted with the caseloads' views: a few reads, only when a cap is set)."""
    if not grant.limits:
        return
    s = services()
    scopes = grant_scope(s.admin, grant, s.records, now)
    too_much = over_limits(grant, scopes)
    if too_much:
        raise ApiError(422, "policy.scope_too_large", "a device of this user would hold "
                       f"{' and '.join(too_much)}; ask IT to narrow the policy (fewer "
                       "caseloads or record types, a shorter time window)",
                       {"caseloads": {c: v.to_json() for c, v in scopes.items()},
                        "limits": dict(grant.limits)})


def _snapshot_database(grant: Grant, database: dict[str, Any]) -> SnapshotDatabase:
    """A database of the snapshot: what holds in its caseload (a break-glass caseload gets
    the user's roles and types across their rules: Grant.as_caseload)."""
    caseload = grant.caseloads.get(database["caseload"]) or grant.as_caseload(
        database["caseload"])
    return SnapshotDatabase(caseload=caseload.id, name=database["name"],
                            filter=database["filter"], clinical_roles=caseload.clinical_roles,
                            record_types=frozenset(caseload.record_types),
                            resolver=caseload.resolver,
                            break_glass=bool(database.get("break_glass")),
                            time_window_seconds=caseload.filter.time_window,
                            attachment_retention_seconds=caseload.filter.attachment_retention)


def _databases(grant: Grant, extra: tuple[str, Filter] | None,
               now: datetime) -> list[dict[str, Any]]:
    """Each database the credential opens, with the replication filter for it."""
    url = services().settings.public_couchdb_url
    wanted = [(c.id, c.filter, False) for c in grant.caseloads.values()]
    if extra:
        wanted.append((extra[0], extra[1], True))
    databases = []
    for caseload_id, flt, emergency in wanted:
        db = caseload_db(caseload_id)
        entry: dict[str, Any] = {"caseload": caseload_id, "name": db, "url": f"{url}/{db}"}
        if emergency:
            entry["break_glass"] = True
        entry["filter"] = {"name": DEVICE_FILTER, "query_params": flt.query_params(now)}
        databases.append(entry)
    return databases


def _events(identity: Identity, device: Device, policy: Policy, issued: Issued,
            rotated: list[str], break_glass: dict[str, Any] | None) -> list[AuditEvent]:
    """The audit entries of one issuance, written together: no break-glass access goes
    unflagged, and no rotation unrecorded."""
    events = [AuditEvent("credentials.issue", identity.user, {
        "name": issued.name, "device": device.id, "roles": list(issued.roles),
        "expires_at": issued.expires_at, "policy_version": policy.version,
        "break_glass": break_glass is not None})]
    if rotated:
        events.append(AuditEvent("credentials.rotate", identity.user, {
            "name": issued.name, "device": device.id, "replaced": rotated}))
    if break_glass is not None:
        events.append(AuditEvent(glass.ISSUE, break_glass["caseload"], {
            "user": identity.user, "device": device.id, "name": issued.name,
            "justification": break_glass["justification"], "expires_at": issued.expires_at,
            "review": break_glass["review"]}))
    return events


def _undo_if_revoked_meanwhile(identity: Identity, device: Device, name: str) -> None:
    """A revocation that ran between this request's checks and its ``_users`` write listed
    the CouchDB users before this one existed. It marks the device or user first and deletes
    second, so reading the marks again after the write catches it (both in one request):
    undo, and refuse."""
    s = services()
    try:
        found, revoked_at = s.devices.read(device.id, identity.user)
        usable(device.id, found)
        refuse_if_revoked(identity, revoked_at)
    except ApiError:
        s.credentials.delete(name)
        raise


@blueprint.post("/v1/credentials")
def credentials() -> tuple[Response, int]:
    # The device first: a revoked device hears device.revoked (and wipes itself) even
    # when its clinician's identity token has expired meanwhile.
    device, identity = require_device_and_user()
    inputs.only(inputs.body())
    policy, grant = require_grant(identity)
    if not grant.caseloads:
        raise ApiError(403, "policy.no_caseloads", f"the access policy gives {identity.user} "
                       "no active caseload", {"notes": grant.notes,
                                              "policy_version": policy.version})
    return jsonify(issue(identity, device, policy, grant)), 201


@blueprint.delete("/v1/users/<user>/credentials")
def revoke_user_credentials(user: str) -> Response:
    """Delete every CouchDB user ``user`` holds, and refuse identity tokens issued before now
    (a stolen token dies with the revocation). For the user themselves or a policy admin."""
    identity = require_user()
    try:
        check_user_id(user)
    except InvalidName as exc:
        raise ApiError(404, "user.unknown", str(exc)) from exc
    _, grant = policy_and_grant(identity)
    if user != identity.user and not grant.admin:
        raise ApiError(403, "auth.not_admin", "only the user themselves or a policy admin "
                       "may revoke a user's credentials")
    revoked = revocation.revoke_user(services().admin, user, identity.user)
    return jsonify({"user": user, "revoked_at": revoked.revoked_at,
                    "deleted_credentials": revoked.deleted})
