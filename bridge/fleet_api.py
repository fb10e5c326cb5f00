"""``GET /v1/devices``: every device of the fleet and how it syncs, for policy admins only.

The same rows as ``carecouch fleet devices`` (carecouch/fleet_summary.py): registry,
credentials and the devices' own sync reports, those needing attention first.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from carecouch.fleet_summary import fleet_devices

from .auth import require_admin, require_user
from .fleet import fleet
from .services import services

blueprint = Blueprint("fleet_api", __name__)


@blueprint.get("/v1/devices")
def devices() -> Response:
    require_admin(require_user())
    rows = fleet_devices(services().admin, fleet().store)
    return jsonify({"devices": [row.as_json() for row in rows]})
