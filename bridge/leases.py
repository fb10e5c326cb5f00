"""Exclusive records: create them, and claim, renew and release their leases.

The writes go to the caseload database as the bridge's own CouchDB user, so the record rules
apply to the bridge too (it may create exclusive records in their initial status and change
leases, nothing else). Each granted or renewed lease comes with a lease token signed with the
bridge's key, which the device checks offline before it lets the clinician complete the record.
"""

from __future__ import annotations

import re
import time
from typing import Any

from flask import Blueprint, Response, jsonify

from carecouch.couch import Doc
from carecouch.errors import CouchForbidden
from carecouch.ids import InvalidCaseloadId, caseload_db, check_caseload_id
from carecouch.leases import Granted, Leases, new_exclusive_record
from carecouch.policy import Grant
from carecouch.records import RECORD_ID_SUFFIX_PATTERN, SUBJECT_PATTERN, refusal_code
from carecouch.snapshot import LEASE_TYPE

from . import inputs
from .auth import require_grant
from .devices import require_device_and_user
from .errors import ApiError
from .idp import Identity
from .services import services

blueprint = Blueprint("leases", __name__)
# "<type>:<uuid>"; no leading "_", which CouchDB reserves (_design, _local).
RECORD_ID = re.compile(rf"^[a-z][a-z_]{{0,39}}:{RECORD_ID_SUFFIX_PATTERN.pattern}$")
SUBJECT = re.compile(rf"^{SUBJECT_PATTERN.pattern}$")
RESERVED = {"_id", "_rev", "type", "subject", "author", "device", "at", "clock_offset_ms",
            "status", "lease", "completed_by", "completed_at", "changed"}


def _caseload(data: dict[str, Any], grant: Grant) -> str:
    caseload_id = inputs.required_text(data, "caseload", max_length=48)
    try:
        check_caseload_id(caseload_id)
    except InvalidCaseloadId as exc:
        raise ApiError(400, "request.bad_field", str(exc), {"field": "caseload"}) from exc
    if caseload_id not in grant.caseloads:
        raise ApiError(403, "lease.caseload_not_granted", f"the access policy does not give "
                       f"you caseload {caseload_id}")
    return caseload_id


def _leases_for(caseload_id: str) -> Leases:
    s = services()
    return Leases(s.couch.db(caseload_db(caseload_id)), s.records, sign=s.sign_record)


def _context() -> tuple[Identity, str, Grant, dict[str, Any]]:
    # The device first: a revoked device hears device.revoked (and wipes itself) even
    # when its clinician's identity token has expired meanwhile.
    device, identity = require_device_and_user()
    data = inputs.body()
    _, grant = require_grant(identity)
    return identity, device.id, grant, data


def _token(caseload_id: str, granted: Granted) -> str:
    record = granted.record
    payload = {**granted.lease, "iss": "carecouch-bridge", "iat": int(time.time()),
               "caseload": caseload_id, "db": caseload_db(caseload_id),
               "record": record["_id"], "type": record.get("type"), "rev": record["_rev"]}
    return services().signer.sign(payload, LEASE_TYPE)


def _answer(identity: Identity, action: str, caseload_id: str, granted: Granted,
            status: int = 200) -> tuple[Response, int]:
    record = granted.record
    services().audit(identity.user).record(action, caseload_id, {
        "record": record["_id"], "rev": record["_rev"], "lease": granted.lease,
        "changed": granted.changed, "settled_branches": granted.settled})
    body: dict[str, Any] = {"caseload": caseload_id, "record": record["_id"],
                            "rev": record["_rev"], "lease": granted.lease or None}
    if granted.lease:
        body["token"] = _token(caseload_id, granted)
    return jsonify(body), status


def _record_id(data: dict[str, Any]) -> str:
    return inputs.required_text(data, "record", max_length=120, pattern=RECORD_ID)


def _require_type(leases: Leases, record_id: str, grant: Grant, caseload_id: str) -> None:
    """403 unless the policy lets the caller complete records of this one's type in this
    caseload (roles and types hold per caseload)."""
    _, spec = leases.read(record_id)
    if spec.name not in grant.caseloads[caseload_id].record_types:
        raise ApiError(403, "lease.type_not_granted", f"the access policy does not let you "
                       f"complete {spec.name} records in caseload {caseload_id}")


@blueprint.post("/v1/leases")
def claim() -> tuple[Response, int]:
    identity, device, grant, data = _context()
    inputs.only(data, "caseload", "record")
    caseload_id = _caseload(data, grant)
    record_id = _record_id(data)
    leases = _leases_for(caseload_id)
    _require_type(leases, record_id, grant, caseload_id)
    granted = leases.claim(record_id, identity.user, device, grant.lease_lifetime)
    return _answer(identity, "lease.claim", caseload_id, granted,
                   201 if granted.changed else 200)


def _change(action: str) -> tuple[Response, int]:
    identity, device, grant, data = _context()
    inputs.only(data, "caseload", "record", "grant")
    caseload_id = _caseload(data, grant)
    record_id = _record_id(data)
    grant_id = inputs.required_text(data, "grant", max_length=64)
    leases = _leases_for(caseload_id)
    if action == "lease.renew":
        # the policy may have changed since the claim
        _require_type(leases, record_id, grant, caseload_id)
        granted = leases.renew(record_id, identity.user, device, grant_id, grant.lease_lifetime)
    else:
        granted = leases.release(record_id, identity.user, device, grant_id)
    return _answer(identity, action, caseload_id, granted)


@blueprint.post("/v1/leases/renew")
def renew() -> tuple[Response, int]:
    return _change("lease.renew")


@blueprint.post("/v1/leases/release")
def release() -> tuple[Response, int]:
    return _change("lease.release")


@blueprint.post("/v1/records")
def create_record() -> tuple[Response, int]:
    """Create an exclusive record (only the bridge may: exclusive.js) in a caseload the caller
    is granted; the audit trail names who asked."""
    identity, device, grant, data = _context()
    inputs.only(data, "caseload", "type", "subject", "fields")
    caseload_id = _caseload(data, grant)
    type_name = inputs.required_text(data, "type", max_length=40)
    spec = services().records.types.get(type_name)
    if spec is None or spec.record_class != "exclusive":
        raise ApiError(422, "record.not_exclusive", f"{type_name!r} is not an exclusive record "
                       "type; devices create other records themselves")
    subject = inputs.required_text(data, "subject", max_length=64, pattern=SUBJECT)
    fields = data.get("fields", {})
    if not isinstance(fields, dict):
        raise ApiError(400, "request.bad_field", "fields must be an object", {"field": "fields"})
    reserved = sorted(set(fields) & RESERVED) or sorted(f for f in fields if f.startswith("_"))
    if reserved:
        raise ApiError(400, "request.bad_field", f"fields may not set {reserved[0]!r} (the "
                       "bridge sets it)", {"field": f"fields.{reserved[0]}"})
    s = services()
    doc: Doc = s.sign_record(new_exclusive_record(spec, subject, fields,
                                                  s.settings.bridge_user))
    try:
        doc["_rev"] = s.couch.db(caseload_db(caseload_id)).put(doc)["rev"]
    except CouchForbidden as exc:  # the record rules refused it: say which rule
        code = refusal_code(exc.reason) if exc.error == "forbidden" else exc.error
        raise ApiError(422, "record.refused", exc.reason, {"rule": code}) from exc
    s.audit(identity.user).record("record.create", caseload_id, {
        "record": doc["_id"], "type": type_name, "subject": subject, "device": device})
    return jsonify({"caseload": caseload_id, "record": doc}), 201
