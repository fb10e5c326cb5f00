"""One JSON error shape for every error the bridge answers, whatever raised it.

``{"error": "<stable code>", "message": "<one line for a person>", "details": {...}}``. Codes
are dotted (``auth.bad_token``, ``lease.taken``); devices branch on the code, people read the
message. Bad input of any kind is a 4xx: an unexpected exception is logged and answered as a
500 in the same shape, and the API fuzz test (tests/bridge/test_fuzz.py) looks for any.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from carecouch.audit import AuditWriteFailed
from carecouch.credentials import CredentialsBusy
from carecouch.devices import DeviceBusy
from carecouch.errors import CouchError, CouchUnreachable
from carecouch.leases import LeaseError

log = logging.getLogger("carecouch.bridge")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 details: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})


def error_response(status: int, code: str, message: str,
                   details: Mapping[str, Any] | None = None,
                   headers: Mapping[str, str] | None = None) -> Response:
    response = jsonify({"error": code, "message": message, "details": dict(details or {})})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


# Werkzeug's HTTP errors (unknown route, wrong method, body too large...) by status.
_HTTP_CODES = {400: "request.bad", 404: "request.not_found", 405: "request.method_not_allowed",
               413: "request.too_large", 415: "request.unsupported_media_type"}


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.errorhandler(LeaseError)
    def lease_error(exc: LeaseError) -> Response:
        return error_response(exc.status, exc.code, str(exc), exc.details)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = _HTTP_CODES.get(status, f"request.http_{status}")
        response = error_response(status, code, exc.description or exc.name)
        if status == 405 and exc.get_response().headers.get("Allow"):
            response.headers["Allow"] = exc.get_response().headers["Allow"]
        return response

    @app.errorhandler(DeviceBusy)
    @app.errorhandler(CredentialsBusy)
    def busy(exc: DeviceBusy | CredentialsBusy) -> Response:
        # Concurrent requests for one device kept overwriting each other: not a fault.
        return error_response(503, "request.busy", str(exc), headers={"Retry-After": "1"})

    @app.errorhandler(CouchUnreachable)
    def unreachable(exc: CouchUnreachable) -> Response:
        log.warning("CouchDB unreachable: %s", exc)
        return error_response(503, "couchdb.unreachable", "CouchDB cannot be reached; try "
                              "again shortly", headers={"Retry-After": "5"})

    @app.errorhandler(AuditWriteFailed)
    def audit_failed(exc: AuditWriteFailed) -> Response:
        log.error("audit write failed: %s", exc)
        return error_response(503, "audit.unavailable", "the audit trail could not be "
                              "written, so the operation is not reported done; try again")

    @app.errorhandler(CouchError)
    def couch_error(exc: CouchError) -> Response:
        log.error("CouchDB error: %s", exc)
        status = exc.status or "an error"
        return error_response(502, "couchdb.error", f"CouchDB answered {status}: {exc.reason}")

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unexpected error")
        return error_response(500, "internal", "unexpected error in the bridge; it has been "
                              "logged")
