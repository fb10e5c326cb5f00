"""``POST /v1/break-glass``: emergency access to a caseload outside the user's policy.

Only for users the policy names under ``break_glass``, only with a typed justification, for
the policy's short break-glass lifetime; the credential replaces the device's current one
(it carries the user's usual caseloads too) and is flagged for review in the audit trail
(``carecouch audit break-glass`` lists them).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from carecouch import break_glass as glass
from carecouch.clock import format_utc, parse_utc, utc_now
from carecouch.ids import InvalidCaseloadId, check_caseload_id
from carecouch.registry import CaseloadState

from . import inputs
from .auth import require_grant
from .credentials import issue
from .devices import require_device, require_device_and_user
from .errors import ApiError
from .services import services

blueprint = Blueprint("break_glass", __name__)
MIN_JUSTIFICATION = 20


@blueprint.post("/v1/break-glass")
def break_glass() -> tuple[Response, int]:
    # The device first: a revoked device hears device.revoked (and wipes itself) even
    # when its clinician's identity token has expired meanwhile.
    device, identity = require_device_and_user()
    data = inputs.body()
    inputs.only(data, "caseload", "justification")
    caseload_id = inputs.required_text(data, "caseload", max_length=48)
    try:
        check_caseload_id(caseload_id)
    except InvalidCaseloadId as exc:
        raise ApiError(400, "request.bad_field", str(exc), {"field": "caseload"}) from exc
    justification = inputs.required_text(data, "justification", min_length=MIN_JUSTIFICATION,
                                         max_length=2000).strip()
    policy, grant = require_grant(identity)
    if not grant.break_glass:
        raise ApiError(403, "break_glass.not_allowed", f"the access policy does not let "
                       f"{identity.user} use break-glass access")
    record = services().caseloads.caseload(caseload_id)
    if record is None or record.get("status") != CaseloadState.ACTIVE:
        raise ApiError(404, "caseload.unknown", f"no active caseload {caseload_id}")
    if caseload_id in grant.caseloads:
        raise ApiError(409, "break_glass.not_needed", f"the policy already gives "
                       f"{identity.user} caseload {caseload_id}; ask for credentials instead")
    flag = {"caseload": caseload_id, "justification": justification, "review": "pending",
            "requested_at": utc_now()}
    body = issue(identity, device, policy, grant, extra=(caseload_id, policy.filter),
                 lifetime=grant.break_glass_lifetime, break_glass=flag)  # audited there
    return jsonify({**body, "break_glass": flag}), 201


@blueprint.post("/v1/break-glass/reviews")
def reviews() -> tuple[Response, int]:
    """The signing device's break-glass grants and their review, so it flags them to its
    clinician until reviewed. Signed by the device only: it learns no more than it holds."""
    device = require_device()
    data = inputs.body()
    inputs.only(data, "since")
    since = inputs.text(data, "since", required=False, max_length=40)
    if since is not None:
        since = inputs.checked(since, lambda t: format_utc(parse_utc(t)), "since")
    # From `since` (the device's oldest grant still pending): the trail is read from there.
    found = glass.grants(services().audit("carecouch"), since=since, device=device.id)
    return jsonify({"grants": [g.to_json(private=False) for g in found]}), 200
