"""The OpenAPI 3.1 description of the bridge, served at ``/openapi.json``.

Written by hand next to the code it describes (each path here has a handler; the fuzz test
tests/bridge/test_fuzz.py drives every operation from this document and fails on any 5xx).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from carecouch import __version__

blueprint = Blueprint("openapi", __name__)

_ID = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$"}
_CASELOAD = {"type": "string", "pattern": "^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$", "maxLength": 48}
_RECORD = {"type": "string", "pattern": "^[a-z_]{1,40}:[A-Za-z0-9-]{8,64}$"}
_OBJ = {"type": "object"}
_SIGNED: list[dict[str, list[str]]] = [
    {"bearer": [], "device": [], "timestamp": [], "nonce": [], "signature": []}]
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "properties": properties, "required": required,
        "additionalProperties": False}}}}


def _answers(ok: int, description: str, *errors: int) -> dict[str, Any]:
    out: dict[str, Any] = {str(ok): {"description": description, "content": {
        "application/json": {"schema": _OBJ}}}}
    for status in errors:
        out[str(status)] = {"$ref": "#/components/responses/Error"}
    return out


_SIGNED_ERRORS = (400, 401, 403, 404, 409, 413, 422, 429, 503)


def _op(summary: str, security: list[dict[str, list[str]]], answers: dict[str, Any],
        body: dict[str, Any] | None = None, params: list[dict[str, Any]] | None = None
        ) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "security": security, "responses": answers}
    if body is not None:
        op["requestBody"] = body
    if params:
        op["parameters"] = params
    return op


def _path_param(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": schema}


_LEASE_BODY = _body({"caseload": _CASELOAD, "record": _RECORD}, ["caseload", "record"])
_LEASE_CHANGE = _body({"caseload": _CASELOAD, "record": _RECORD,
                       "grant": {"type": "string", "maxLength": 64}},
                      ["caseload", "record", "grant"])

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "carecouch bridge", "version": __version__,
             "description": "Policy-driven, short-lived, revocable CouchDB replication "
                            "credentials and exclusive-record leases. See docs/bridge.md."},
    "paths": {
        "/healthz": {"get": _op("Health for load balancers", [], _answers(200, "up", 503))},
        "/v1/keys": {"get": _op("The bridge's public signing keys (JWK set)", [],
                                _answers(200, "JWK set"))},
        "/v1/policy": {"get": _op("What the access policy gives the caller, and why", _BEARER,
                                  _answers(200, "grant", 401, 403, 429))},
        "/v1/devices": {"post": _op(
            "Enrol a device (signed with the key being enrolled)", _SIGNED,
            _answers(201, "enrolled", *_SIGNED_ERRORS),
            _body({"device": _ID, "public_key": {"type": "string", "maxLength": 100},
                   "label": {"type": "string", "maxLength": 100}}, ["device", "public_key"]))},
        "/v1/devices/{device_id}": {
            "get": _op("Show an enrolled device", _BEARER,
                       _answers(200, "device", 401, 404, 429),
                       params=[_path_param("device_id", _ID)]),
            "delete": _op("Revoke a lost device: its credentials are deleted at once", _BEARER,
                          _answers(200, "revoked", 401, 404, 429),
                          params=[_path_param("device_id", _ID)])},
        "/v1/credentials": {"post": _op(
            "Issue (or rotate) this device's short-lived CouchDB credentials", _SIGNED,
            _answers(201, "credentials", *_SIGNED_ERRORS), _body({}, []))},
        "/v1/users/{user}/credentials": {"delete": _op(
            "Revoke every credential a user holds", _BEARER,
            _answers(200, "revoked", 401, 403, 404, 429),
            params=[_path_param("user", {"type": "string", "maxLength": 100})])},
        "/v1/break-glass": {"post": _op(
            "Emergency credentials for a caseload outside the policy (audited for review)",
            _SIGNED, _answers(201, "credentials", *_SIGNED_ERRORS),
            _body({"caseload": _CASELOAD,
                   "justification": {"type": "string", "minLength": 20, "maxLength": 2000}},
                  ["caseload", "justification"]))},
        "/v1/leases": {"post": _op("Claim the lease on an exclusive record", _SIGNED,
                                   _answers(201, "granted", *_SIGNED_ERRORS), _LEASE_BODY)},
        "/v1/leases/renew": {"post": _op("Renew a lease you hold", _SIGNED,
                                         _answers(200, "renewed", *_SIGNED_ERRORS),
                                         _LEASE_CHANGE)},
        "/v1/leases/release": {"post": _op("Release a lease you hold", _SIGNED,
                                           _answers(200, "released", *_SIGNED_ERRORS),
                                           _LEASE_CHANGE)},
        "/v1/records": {"post": _op(
            "Create an exclusive record in its initial status", _SIGNED,
            _answers(201, "created", *_SIGNED_ERRORS),
            _body({"caseload": _CASELOAD, "type": {"type": "string", "maxLength": 40},
                   "subject": {"type": "string", "maxLength": 64}, "fields": _OBJ},
                  ["caseload", "type", "subject"]))},
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "device": {"type": "apiKey", "in": "header", "name": "X-Carecouch-Device"},
            "timestamp": {"type": "apiKey", "in": "header", "name": "X-Carecouch-Timestamp"},
            "nonce": {"type": "apiKey", "in": "header", "name": "X-Carecouch-Nonce"},
            "signature": {"type": "apiKey", "in": "header", "name": "X-Carecouch-Signature"}},
        "responses": {"Error": {"description": "every error has this shape", "content": {
            "application/json": {"schema": {
                "type": "object", "required": ["error", "message", "details"],
                "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                               "details": _OBJ}}}}}},
    },
}


@blueprint.get("/openapi.json")
def document() -> Response:
    return jsonify(DOCUMENT)
