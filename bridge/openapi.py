"""The OpenAPI 3.1 description of the bridge, served at ``/openapi.json``.

Written by hand next to the code it describes; the answers' shapes are in
:mod:`bridge.openapi_schemas`. The fuzz test (tests/bridge/test_fuzz.py) checks that every
route is here, drives every operation from this document with valid and invalid input, and
fails on any 5xx and on any answer whose status or body this document does not describe.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from carecouch import __version__

from .break_glass import MIN_JUSTIFICATION
from .leases import RECORD_ID, SUBJECT
from .openapi_fleet import FLEET_SCHEMAS
from .openapi_schemas import CASELOAD_ID, DEVICE_ID, RETRY_AFTER, SCHEMAS, USER_ID, ref

blueprint = Blueprint("openapi", __name__)

_RECORD = {"type": "string", "pattern": RECORD_ID.pattern}
_SIGNED: list[dict[str, list[str]]] = [
    {"bearer": [], "device": [], "timestamp": [], "nonce": [], "signature": []}]
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
_DEVICE_ONLY: list[dict[str, list[str]]] = [
    {"device": [], "timestamp": [], "nonce": [], "signature": []}]
# The dashboard: the sign-in page needs nothing; the fleet, a policy admin's token.
_PAGE: list[dict[str, list[str]]] = [{}, {"bearer": []}, {"dashboard_cookie": []}]
_JSON = "application/json"
_HTML = "text/html"
_PAGE_ERRORS = (400, 401, 403, 413, 429, 502, 503)
# What can go wrong where (docs/bridge.md lists the codes): every call that reads an identity
# token can meet 401, 403 (a user name CouchDB cannot take) and 429 (the caller's rate limit,
# or its address's failure budget: bridge/failures.py); everything that reaches
# CouchDB 502/503 (CouchDB or the audit trail unavailable); bodies can be bad or too large.
_BEARER_ERRORS = (401, 403, 404, 429, 502, 503)
_SIGNED_ERRORS = (400, 401, 403, 404, 409, 413, 422, 429, 502, 503)


def _body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"required": True, "content": {_JSON: {"schema": {
        "type": "object", "properties": properties, "required": required,
        "additionalProperties": False}}}}


def _answers(ok: dict[int, str], *errors: int) -> dict[str, Any]:
    """``ok``: status -> the schema of its body; ``errors``: statuses answered as Error."""
    out: dict[str, Any] = {str(status): {"description": schema, "content": {
        _JSON: {"schema": ref(schema)}}} for status, schema in ok.items()}
    for status in errors:
        name = "RateLimited" if status == 429 else "Error"
        out[str(status)] = {"$ref": f"#/components/responses/{name}"}
    return out


def _page(ok: dict[int, str], *errors: int) -> dict[str, Any]:
    """A page's answers: ``ok`` statuses with their description, refusals as a page for a
    browser or the one error shape for anyone else."""
    out: dict[str, Any] = {}
    for status, description in ok.items():
        if status == 303:
            out["303"] = {"description": description, "headers": {
                "Location": {"schema": {"type": "string"}}}}
        else:
            out[str(status)] = {"description": description, "content": {
                _HTML: {"schema": {"type": "string"}}}}
    for status in errors:
        out[str(status)] = {"$ref": "#/components/responses/"
                                    + ("RateLimited" if status == 429 else "Refused")}
    return out


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


_LEASE_CHANGE = _body({"caseload": CASELOAD_ID, "record": _RECORD,
                       "grant": {"type": "string", "maxLength": 64}},
                      ["caseload", "record", "grant"])
_DEVICE_PARAM = [_path_param("device_id", DEVICE_ID)]

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "carecouch bridge", "version": __version__,
             "description": "Policy-driven, short-lived, revocable CouchDB replication "
                            "credentials and exclusive-record leases. See docs/bridge.md."},
    "paths": {
        "/healthz": {"get": _op("Health for load balancers", [],
                                _answers({200: "Health"}, 503))},
        "/openapi.json": {"get": _op("This document", [], {"200": {
            "description": "OpenAPI 3.1", "content": {_JSON: {"schema": {"type": "object"}}}}})},
        "/v1/keys": {"get": _op("The bridge's public signing keys (JWK set)", [],
                                _answers({200: "Keys"}))},
        "/v1/policy": {"get": _op("What the access policy gives the caller, and why", _BEARER,
                                  _answers({200: "Policy"}, *_BEARER_ERRORS))},
        "/v1/devices": {"get": _op(
            "Every device of the fleet and how it syncs (policy admins only)", _BEARER,
            _answers({200: "FleetDevices"}, *_BEARER_ERRORS)), "post": _op(
            "Enrol a device (signed with the key being enrolled)", _SIGNED,
            _answers({201: "DeviceAnswer"}, *_SIGNED_ERRORS),
            _body({"device": DEVICE_ID, "public_key": {"type": "string", "maxLength": 100},
                   "label": {"type": "string", "maxLength": 100}}, ["device", "public_key"]))},
        "/v1/devices/{device_id}": {
            "get": _op("Show an enrolled device", _BEARER,
                       _answers({200: "DeviceAnswer"}, *_BEARER_ERRORS), params=_DEVICE_PARAM),
            "delete": _op("Revoke a lost device: its credentials are deleted at once", _BEARER,
                          _answers({200: "DeviceRevoked"}, *_BEARER_ERRORS),
                          params=_DEVICE_PARAM)},
        "/v1/credentials": {"post": _op(
            "Issue (or rotate) this device's short-lived CouchDB credentials", _SIGNED,
            _answers({201: "Credentials"}, *_SIGNED_ERRORS), _body({}, []))},
        "/v1/users/{user}/credentials": {"delete": _op(
            "Revoke every credential a user holds", _BEARER,
            _answers({200: "UserRevoked"}, *_BEARER_ERRORS),
            params=[_path_param("user", USER_ID)])},
        "/v1/break-glass": {"post": _op(
            "Emergency credentials for a caseload outside the policy (audited for review)",
            _SIGNED, _answers({201: "Credentials"}, *_SIGNED_ERRORS),
            _body({"caseload": CASELOAD_ID,
                   "justification": {"type": "string", "minLength": MIN_JUSTIFICATION,
                                     "maxLength": 2000}},
                  ["caseload", "justification"]))},
        "/v1/break-glass/reviews": {"post": _op(
            "This device's break-glass grants and whether each was reviewed", _SIGNED,
            _answers({200: "BreakGlassReviews"}, *_SIGNED_ERRORS),
            _body({"since": {"type": "string", "format": "date-time"}}, []))},
        "/v1/leases": {"post": _op(
            "Claim the lease on an exclusive record (200: you already hold it)", _SIGNED,
            _answers({200: "LeaseAnswer", 201: "LeaseAnswer"}, *_SIGNED_ERRORS),
            _body({"caseload": CASELOAD_ID, "record": _RECORD}, ["caseload", "record"]))},
        "/v1/leases/renew": {"post": _op("Renew a lease you hold", _SIGNED,
                                         _answers({200: "LeaseAnswer"}, *_SIGNED_ERRORS),
                                         _LEASE_CHANGE)},
        "/v1/leases/release": {"post": _op("Release a lease you hold", _SIGNED,
                                           _answers({200: "LeaseAnswer"}, *_SIGNED_ERRORS),
                                           _LEASE_CHANGE)},
        "/v1/records": {"post": _op(
            "Create an exclusive record in its initial status", _SIGNED,
            _answers({201: "RecordCreated"}, *_SIGNED_ERRORS),
            _body({"caseload": CASELOAD_ID, "type": {"type": "string", "maxLength": 40},
                   "subject": {"type": "string", "pattern": SUBJECT.pattern},
                   "fields": {"type": "object"}},
                  ["caseload", "type", "subject"]))},
        "/v1/reports": {"post": _op(
            "Send sync reports (signed by the device; a report sent twice is stored once)",
            _DEVICE_ONLY, _answers({200: "ReportsAnswer"}, *_SIGNED_ERRORS),
            {"required": True, "content": {_JSON: {"schema": {
                "type": "object", "required": ["reports"], "additionalProperties": False,
                "properties": {"reports": {"type": "array", "minItems": 1, "maxItems": 100,
                                           "items": ref("SyncReport")}}}}}})},
        "/metrics": {"get": _op(
            "Fleet health in the Prometheus text format (for a scraper with the metrics "
            "token; 404 when no token is set)", [{"metrics": []}],
            {"200": {"description": "Prometheus text exposition format 0.0.4",
                     "content": {"text/plain": {"schema": {"type": "string"}}}},
             **_answers({}, 401, 404, 429, 502, 503)})},
        "/dashboard": {"get": _op(
            "The fleet dashboard for policy admins (without a token: the sign-in page)",
            _PAGE, _page({200: "the dashboard, or the sign-in page"}, *_PAGE_ERRORS),
            params=[{"name": "days", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 400}},
                    {"name": "caseload", "in": "query", "required": False,
                     "schema": CASELOAD_ID}])},
        "/dashboard/login": {"post": _op(
            "Sign in to the dashboard with a policy admin's identity-provider token",
            [{}], _page({303: "signed in: a cookie holding the token, and on to the "
                              "dashboard"}, *_PAGE_ERRORS),
            {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
                "type": "object", "required": ["token"], "additionalProperties": False,
                "properties": {"token": {"type": "string", "maxLength": 8192}}}}}})},
        "/dashboard/logout": {"post": _op("Sign out of the dashboard (forget the cookie)",
                                          [], _page({303: "signed out"}))},
    },
    "components": {
        "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            "device": {"type": "apiKey", "in": "header", "name": "X-Carecouch-Device"},
            "timestamp": {"type": "apiKey", "in": "header", "name": "X-Carecouch-Timestamp"},
            "nonce": {"type": "apiKey", "in": "header", "name": "X-Carecouch-Nonce"},
            "signature": {"type": "apiKey", "in": "header", "name": "X-Carecouch-Signature"},
            "metrics": {"type": "http", "scheme": "bearer",
                        "description": "CARECOUCH_BRIDGE_METRICS_TOKEN"},
            "dashboard_cookie": {"type": "apiKey", "in": "cookie",
                                 "name": "carecouch_dashboard"}},
        "schemas": {**SCHEMAS, **FLEET_SCHEMAS},
        "responses": {
            "Error": {"description": "every error has this shape; `error` is a stable code",
                      "content": {_JSON: {"schema": ref("Error")}}},
            "Refused": {"description": "a page saying why, for a browser (Accept: "
                                      "text/html); the one error shape for anyone else",
                        "content": {_JSON: {"schema": ref("Error")},
                                    _HTML: {"schema": {"type": "string"}}}},
            "RateLimited": {
                "description": "too many requests for this user or device, or too many failed "
                               "ones from this address: wait `Retry-After` seconds",
                "headers": {"Retry-After": {"required": True, "schema": RETRY_AFTER}},
                "content": {_JSON: {"schema": ref("RateLimited")}}}},
    },
}


@blueprint.get("/openapi.json")
def document() -> Response:
    return jsonify(DOCUMENT)
