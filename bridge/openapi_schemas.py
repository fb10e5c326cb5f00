"""The shapes of the bridge's answers, as JSON Schema, for the OpenAPI document.

Device implementers code against these (docs/bridge.md explains each field); the API fuzz
(tests/bridge/test_fuzz.py) checks every answer the bridge gives against them, so a field
added, renamed or retyped in a handler without its schema here fails the tests.
"""

from __future__ import annotations

from typing import Any

from carecouch.ddocs import DEVICE_FILTER
from carecouch.devices import DeviceStatus
from carecouch.ids import CASELOAD_ID_PATTERN, DEVICE_ID_PATTERN, MAX_ID_LENGTH, USER_ID_PATTERN

# Request fields, shared with the handlers' own checks where they have a pattern.
DEVICE_ID = {"type": "string", "pattern": DEVICE_ID_PATTERN.pattern}
CASELOAD_ID = {"type": "string", "pattern": CASELOAD_ID_PATTERN.pattern,
               "maxLength": MAX_ID_LENGTH}
USER_ID = {"type": "string", "pattern": USER_ID_PATTERN.pattern}

_TEXT = {"type": "string"}
_TEXTS = {"type": "array", "items": _TEXT}
_TIME = {"type": "string", "format": "date-time"}
_MAYBE_TEXT = {"type": ["string", "null"]}
RETRY_AFTER = {"type": "integer", "minimum": 1}  # seconds, as in the Retry-After header
_JWS = {"type": "string", "pattern": "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: dict[str, Any], optional: dict[str, Any] | None = None, *,
            closed: bool = True) -> dict[str, Any]:
    """An object with these fields; ``closed``: no others (a new field needs its schema)."""
    schema: dict[str, Any] = {"type": "object", "required": list(required),
                              "properties": {**required, **(optional or {})}}
    if closed:
        schema["additionalProperties"] = False
    return schema


_FILTER = _object({"name": {"const": DEVICE_FILTER},
                   "query_params": _object({}, {"types": _TEXT, "not_before": _TIME,
                                                "subjects": _TEXT})})
_LEASE = _object({"holder": _TEXT, "device": _TEXT, "granted_at": _TIME, "expires_at": _TIME,
                  "grant": _TEXT})

SCHEMAS: dict[str, Any] = {
    "Error": _object({"error": _TEXT, "message": _TEXT, "details": {"type": "object"}}),
    "RateLimited": _object({"error": {"const": "rate_limited"}, "message": _TEXT,
                            "details": _object({"retry_after": RETRY_AFTER})}),
    "Health": _object({"status": {"enum": ["ok", "unavailable"]}, "policy_version": _TEXT,
                       "policy_error": _MAYBE_TEXT}, {"couchdb": _TEXT}),
    "Keys": _object({"keys": {"type": "array", "minItems": 1, "items": _object({
        "kty": {"const": "OKP"}, "crv": {"const": "Ed25519"}, "x": _TEXT, "kid": _TEXT,
        "alg": {"const": "EdDSA"}, "use": {"const": "sig"}})}}),
    # The grant is an explanation for people (carecouch policy explain); open to additions.
    "Policy": _object({"policy_version": _TEXT, "grant": _object({
        "user": _TEXT, "rules": _TEXTS, "clinical_roles": _TEXTS, "record_types": _TEXTS,
        "caseloads": {"type": "array"}, "roles": _TEXTS, "notes": _TEXTS}, closed=False),
        # What a device of the caller would hold now, per caseload, and the policy's caps.
        "scope": {"type": "object", "additionalProperties": _object(
            {"documents": {"type": "integer"}, "bytes": {"type": "integer"}})},
        "over_limits": _TEXTS}),
    "Device": _object({
        "id": _TEXT, "label": _MAYBE_TEXT,
        "status": {"enum": [DeviceStatus.ACTIVE, DeviceStatus.REVOKED]},
        "enrolled_by": _TEXT, "enrolled_at": _TIME, "holder": _MAYBE_TEXT,
        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
        "revoked_by": _MAYBE_TEXT, "public_key": _TEXT}),
    "DeviceAnswer": _object({"device": ref("Device")}),
    "DeviceRevoked": _object({"device": ref("Device"), "deleted_credentials": _TEXTS}),
    "UserRevoked": _object({"user": _TEXT, "revoked_at": _TIME, "deleted_credentials": _TEXTS}),
    "Database": _object({"caseload": _TEXT, "name": _TEXT, "url": _TEXT, "filter": _FILTER},
                        {"break_glass": {"const": True}}),
    "Credentials": _object({
        "couchdb_url": _TEXT, "username": _TEXT, "password": _TEXT, "roles": _TEXTS,
        "issued_at": _TIME, "expires_at": _TIME, "server_time": _TIME,
        "databases": {"type": "array", "items": ref("Database")}, "rotated": _TEXTS,
        "policy_version": _TEXT, "snapshot": _JWS},
        {"break_glass": _object({"id": _TEXT, "caseload": _TEXT, "justification": _TEXT,
                                 "review": {"const": "pending"}, "requested_at": _TIME})}),
    # A device's own break-glass grants and their review (no justification, no note).
    "BreakGlassReviews": _object({"grants": {"type": "array", "items": _object({
        "id": _TEXT, "at": _TIME, "caseload": _TEXT, "user": _TEXT, "device": _TEXT,
        "expires_at": _TEXT, "review": {"enum": ["pending", "justified", "not-justified"]},
        "reviewed_at": {"type": ["string", "null"], "format": "date-time"}})}}),
    "LeaseAnswer": _object({"caseload": _TEXT, "record": _TEXT, "rev": _TEXT,
                            "lease": {"oneOf": [_LEASE, {"type": "null"}]}},
                           {"token": _JWS}),
    # The record as stored: the envelope, the type's own fields, its status.
    "RecordCreated": _object({"caseload": _TEXT, "record": _object({
        "_id": _TEXT, "_rev": _TEXT, "type": _TEXT, "subject": _TEXT, "status": _TEXT},
        closed=False)}),
}
