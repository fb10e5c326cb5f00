"""``POST /v1/reports``: devices send their sync reports (signed, like their other requests).

A device records a report after every sync it attempts (one per database; docs/device.md,
"Sync reports"), keeps them queued while it cannot reach the bridge, and sends them in
batches of up to 100. The request is signed by the device only: a device whose clinician's
token has expired still reports, which is when IT most wants to hear from it. Each report is
stored once however often it is sent (its id); the answer names every report it received,
so the device drops them all from its queue.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from carecouch.fleet import MAX_REPORTS_PER_REQUEST, BadReport, check_report

from . import inputs
from .devices import require_device
from .errors import ApiError
from .fleet import fleet

blueprint = Blueprint("reports", __name__)


@blueprint.post("/v1/reports")
def receive() -> tuple[Response, int]:
    device = require_device()
    data = inputs.body()
    inputs.only(data, "reports")
    reports = data.get("reports")
    if not isinstance(reports, list) or not 1 <= len(reports) <= MAX_REPORTS_PER_REQUEST:
        raise ApiError(400, "request.bad_field", f"reports must be a list of 1 to "
                       f"{MAX_REPORTS_PER_REQUEST} sync reports", {"field": "reports"})
    checked = []
    for index, report in enumerate(reports):
        try:
            checked.append(check_report(report))
        except BadReport as exc:
            raise ApiError(400, "report.bad", f"report {index}: {exc}",
                           {"index": index, "field": exc.field}) from exc
    seen = [r["id"] for r in checked]
    if len(set(seen)) != len(seen):
        raise ApiError(400, "report.bad", "a report id is given twice in one request",
                       {"field": "id"})
    outcome = fleet().store.ingest(device.id, device.holder, checked)
    return jsonify(outcome.as_json()), 200
