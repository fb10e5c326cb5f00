"""``GET /metrics``: the fleet's health in the Prometheus text format, for a scraper only.

Every figure is read from CouchDB at scrape time (carecouch/fleet_summary.py: the views'
aggregates over the last 24 hours, the device statuses, each caseload's conflicts view), so
every bridge instance answers the same and none keeps a counter of its own: scraping any one
of them, or all, gives the fleet. The exposition format is prometheus-client's, not written
by hand: its escaping of label values, HELP and TYPE lines and content type are what every
Prometheus server parses.

Access: ``Authorization: Bearer <CARECOUCH_BRIDGE_METRICS_TOKEN>`` (Prometheus's
``authorization: {credentials_file: ...}``). Without the setting, ``/metrics`` answers 404:
there is nothing to scrape. A wrong token spends the caller's failure budget like any failed
authentication (bridge/failures.py).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from flask import Blueprint, Response, request
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from carecouch.clock import parse_utc
from carecouch.devices import DeviceStatus
from carecouch.fleet_summary import DeviceRow, Summary, fleet_devices, fleet_summary

from .auth import BEARER
from .errors import ApiError
from .failures import AuthFailure, check
from .fleet import fleet
from .services import services

blueprint = Blueprint("metrics", __name__)
WINDOW = timedelta(hours=24)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class FleetCollector(Collector):
    def __init__(self, summary: Summary, devices: list[DeviceRow]) -> None:
        self.summary = summary
        self.devices = devices

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from _fleet(self.devices)
        yield from _caseloads(self.summary)
        yield from _per_device(self.devices)


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"carecouch_fleet_{name}", doc, labels=labels)


def _fleet(devices: list[DeviceRow]) -> Iterator[GaugeMetricFamily]:
    by_status = _gauge("devices", "Devices known to the bridge, by status", ["status"])
    counts: dict[str, int] = {}
    for row in devices:
        counts[row.status] = counts.get(row.status, 0) + 1
    for status in (DeviceStatus.ACTIVE, DeviceStatus.REVOKED):
        by_status.add_metric([status], counts.get(status, 0))
    yield by_status
    attention = _gauge("devices_needing_attention", "Active devices with something to look at, "
                       "by the worst (3 data at risk, 2 failing, 1 watch)", ["severity"])
    for severity in (1, 2, 3):
        attention.add_metric([str(severity)], sum(1 for r in devices
                                                  if r.severity == severity))
    yield attention


def _caseloads(summary: Summary) -> Iterator[GaugeMetricFamily]:
    syncs = _gauge("syncs_24h", "Syncs reported in the last 24 h, by result", ["caseload",
                                                                                "result"])
    ratio = _gauge("sync_success_ratio_24h", "Share of the last 24 h's syncs that succeeded",
                   ["caseload"])
    duration = _gauge("sync_duration_seconds_24h", "Sync duration quantiles over the last "
                      "24 h", ["caseload", "quantile"])
    refused = _gauge("refused_writes_24h", "Writes the server refused in the last 24 h, by "
                     "rule code", ["caseload", "code"])
    conflicts = _gauge("conflicted_records", "Conflicted records in the caseload now "
                       "(CouchDB's conflicts view)", ["caseload"])
    pending = _gauge("devices_with_pending_changes", "Active devices holding changes the "
                     "server does not have yet", ["caseload"])
    silent = _gauge("devices_silent", "Active devices not heard from for longer than the "
                    "silent threshold", ["caseload"])
    glass = _gauge("break_glass_24h", "Break-glass grants in the last 24 h", ["caseload"])
    for part in [summary.fleet, *summary.caseloads]:
        label = part.caseload or "*"
        for result in ("ok", "refused", "stopped"):
            syncs.add_metric([label, result], part.syncs[result])
        if part.syncs["success_rate"] is not None:
            ratio.add_metric([label], part.syncs["success_rate"])
        for quantile, key in (("0.5", "p50_ms"), ("0.95", "p95_ms")):
            if part.syncs[key] is not None:
                duration.add_metric([label, quantile], part.syncs[key] / 1000)
        for code, count in part.refusals.items():
            refused.add_metric([label, code], count)
        if part.conflicts_now is not None:
            conflicts.add_metric([label], part.conflicts_now)
        pending.add_metric([label], part.devices_pending)
        silent.add_metric([label], part.devices_silent)
        glass.add_metric([label], part.break_glass)
    yield from (syncs, ratio, duration, refused, conflicts, pending, silent, glass)
    events = _gauge("audit_events_24h", "Bridge events in the audit trail in the last 24 h "
                    "(issuance, renewal, revocation, break-glass, leases)", ["action"])
    for action, count in summary.fleet.activity.items():
        events.add_metric([action], count)
    yield events


def _per_device(devices: list[DeviceRow]) -> Iterator[GaugeMetricFamily]:
    pending = _gauge("device_pending_changes", "Changes on the device the server does not "
                     "have yet (as of its last report)", ["device"])
    refused = _gauge("device_refused_writes", "Refused writes waiting on the device",
                     ["device"])
    contact = _gauge("device_last_report_timestamp_seconds", "When the bridge last received "
                     "a report from the device (Unix time)", ["device"])
    for row in devices:
        if row.status != DeviceStatus.ACTIVE:
            continue
        pending.add_metric([row.device], row.pending)
        refused.add_metric([row.device], row.refused)
        if row.last_contact_at:
            contact.add_metric([row.device], parse_utc(row.last_contact_at).timestamp())
    yield from (pending, refused, contact)


def _authorised() -> None:
    token = fleet().metrics_token
    if token is None:
        raise ApiError(404, "metrics.disabled", "metrics are not enabled on this bridge (set "
                       "CARECOUCH_BRIDGE_METRICS_TOKEN)")
    check()
    header = request.headers.get("Authorization", "")
    given = header[len(BEARER):].strip() if header.lower().startswith(BEARER) else ""
    if not given or not hmac.compare_digest(given.encode(), token.encode()):
        raise AuthFailure(401, "auth.bad_token", "send Authorization: Bearer <the metrics "
                          "token> (CARECOUCH_BRIDGE_METRICS_TOKEN)",
                          headers={"WWW-Authenticate": "Bearer"})


@blueprint.get("/metrics")
def metrics() -> Response:
    _authorised()
    now = datetime.now(UTC)
    admin, store = services().admin, fleet().store
    devices = fleet_devices(admin, store, now=now)
    summary = fleet_summary(admin, store, since=now - WINDOW, now=now, devices=devices)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(summary, devices))
    return Response(generate_latest(registry), status=200, content_type=CONTENT_TYPE)
