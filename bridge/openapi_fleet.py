"""The fleet-health part of the OpenAPI document: the sync report a device sends (a PouchDB
app sends the same; docs/fleet.md explains each field) and the answers of ``/v1/reports``
and ``/v1/devices``. Patterns and limits are the checker's own (carecouch/fleet.py)."""

from __future__ import annotations

from typing import Any

from carecouch.devices import DeviceStatus
from carecouch.fleet import (
    DATABASE_NAME,
    MAX_CODES,
    MAX_COUNT,
    REFUSAL_CODE,
    REPORT_ID,
    RESULTS,
    STATES,
)

from .openapi_schemas import ref

_TEXT = {"type": "string"}
_TIME = {"type": "string", "format": "date-time"}
_MAYBE_TIME = {"type": ["string", "null"], "format": "date-time"}
_MAYBE_TEXT = {"type": ["string", "null"]}
_COUNT = {"type": "integer", "minimum": 0, "maximum": MAX_COUNT - 1}
_MAYBE_COUNT = {"type": ["integer", "null"], "minimum": 0}


def _closed(required: dict[str, Any], optional: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    return {"type": "object", "required": list(required),
            "properties": {**required, **(optional or {})}, "additionalProperties": False}


SYNC_REPORT = _closed(
    {"id": {"type": "string", "pattern": REPORT_ID.pattern,
            "description": "made once by the device (e.g. a UUID): a report sent twice is "
                           "stored once"},
     "database": {"type": "string", "pattern": DATABASE_NAME.pattern},
     "started_at": _TIME, "ended_at": _TIME,
     "state": {"enum": list(STATES)}, "pulled": _COUNT, "pushed": _COUNT},
    {"refused": {"type": "object", "maxProperties": MAX_CODES,
                 "propertyNames": {"pattern": REFUSAL_CODE.pattern},
                 "additionalProperties": _COUNT,
                 "description": "writes the server refused in this sync, by the rule's code "
                                "(never its reason)"},
     "retries": _COUNT, "conflicts": _COUNT, "pending": _COUNT, "refused_open": _COUNT,
     "store_bytes": _COUNT,
     "removed": {**_COUNT, "description": "records the working-set pass after this sync "
                 "removed from the device (never from the server)"},
     "held_back": {**_COUNT, "description": "records outside the working set the device "
                   "keeps because the server has not confirmed their changes"},
     "clock_offset_ms": {"type": ["integer", "null"]},
     "credential_expires_at": _MAYBE_TIME, "offline_until": _MAYBE_TIME,
     "app_version": {"type": ["string", "null"], "minLength": 1, "maxLength": 40}})

FLEET_DEVICE = _closed({
    "device": _TEXT, "label": _MAYBE_TEXT,
    "status": {"enum": list(DeviceStatus)}, "clinician": _MAYBE_TEXT,
    "caseloads": {"type": "array", "items": _TEXT}, "last_sync_at": _MAYBE_TIME,
    "last_result": {"enum": [*RESULTS, None]}, "last_state": {"enum": [*STATES, None]},
    "pending": _COUNT, "refused": _COUNT, "conflicts": _COUNT, "store_bytes": _MAYBE_COUNT,
    "app_version": _MAYBE_TEXT, "credential_expires_at": _MAYBE_TIME,
    "offline_until": _MAYBE_TIME, "last_contact_at": _MAYBE_TIME,
    "silent_seconds": {"type": ["integer", "null"]},
    "attention": {"type": "array", "items": _TEXT},
    "severity": {"type": "integer", "minimum": 0, "maximum": 3}})

FLEET_SCHEMAS: dict[str, Any] = {
    "SyncReport": SYNC_REPORT,
    "ReportsAnswer": _closed({
        "stored": {"type": "array", "items": _TEXT},
        "duplicates": {"type": "array", "items": _TEXT},
        "expired": {"type": "array", "items": _TEXT},
        "refused": {"type": "array", "items": _closed({"id": _TEXT, "error": _TEXT})}}),
    "FleetDevice": FLEET_DEVICE,
    "FleetDevices": _closed({"devices": {"type": "array", "items": ref("FleetDevice")}}),
}
