"""Read-only endpoints: the caller's own grant, the bridge's public keys, health."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify

from carecouch.errors import CarecouchError
from carecouch.working_set import grant_scope, over_limits

from .auth import policy_and_grant, require_user
from .services import services

log = logging.getLogger("carecouch.bridge")
blueprint = Blueprint("policy", __name__)


@blueprint.get("/v1/policy")
def my_policy() -> Response:
    """What the policy gives the caller, and why (``carecouch policy explain`` for oneself)."""
    identity = require_user()
    policy, grant = policy_and_grant(identity)
    s = services()
    scopes = grant_scope(s.admin, grant, s.records, datetime.now(UTC))
    return jsonify({"policy_version": policy.version, "grant": grant.as_json(),
                    "scope": {c: v.to_json() for c, v in scopes.items()},
                    "over_limits": over_limits(grant, scopes)})


@blueprint.get("/v1/keys")
def keys() -> Response:
    """The bridge's public signing key as a JWK set: devices verify snapshots and lease
    tokens with it offline."""
    return jsonify({"keys": [services().signer.jwk()]})


@blueprint.get("/healthz")
def healthz() -> tuple[Response, int]:
    """For load balancers: 200 when CouchDB answers; says whether the last policy edit loaded."""
    s = services()
    policy = s.policy.get()
    body = {"status": "ok", "policy_version": policy.version,
            "policy_error": s.policy.public_error}
    try:
        s.admin.up()
    except CarecouchError as exc:
        # The detail names internal hosts: it goes to the log, not to whoever asks.
        log.warning("health check: CouchDB unavailable: %s", exc)
        return jsonify({**body, "status": "unavailable",
                        "couchdb": "CouchDB did not answer; see the bridge's log"}), 503
    return jsonify(body), 200
