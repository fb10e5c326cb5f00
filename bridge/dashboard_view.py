"""What the dashboard shows, worked out from the fleet summary and device rows: the tiles,
the devices needing attention, the charts and the caseload table (templates/dashboard.html
lays them out)."""

from __future__ import annotations

from typing import Any

from carecouch.devices import DeviceStatus
from carecouch.fleet_summary import CaseloadSummary, DeviceRow, Summary, ago

from . import charts

ATTENTION_SHOWN = 25
OK, REFUSED, STOPPED = "#2f855a", "#d69e2e", "#c53030"
P50, P95, CONFLICTS = "#3182ce", "#805ad5", "#dd6b20"
SEVERITY = {3: "urgent", 2: "failing", 1: "watch"}


def percent(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.1f}%"


def seconds(ms: float | None) -> str:
    if ms is None:
        return "–"
    return f"{ms / 1000:.1f} s" if ms < 60_000 else f"{ms / 60_000:.1f} min"


def when(text: str | None) -> str:
    """``2026-12-02T09:30:12.345678Z`` -> ``2026-12-02 09:30``."""
    return "–" if not text else f"{text[:10]} {text[11:16]}"


def _tone(rate: float | None) -> str:
    if rate is None:
        return ""
    return "good" if rate >= 0.95 else "warn" if rate >= 0.8 else "bad"


def _tiles(summary: Summary, devices: list[DeviceRow], days: int,
           part: CaseloadSummary) -> list[dict[str, str]]:
    active = [d for d in devices if d.status == DeviceStatus.ACTIVE]
    syncs = part.syncs
    urgent = sum(1 for d in active if d.severity >= 2)
    return [
        {"label": "Devices", "value": str(part.devices if part.caseload else len(active)),
         "sub": f"{urgent} failing or at risk" if urgent else "none failing",
         "tone": "", "sub_tone": "bad" if urgent else "good"},
        {"label": f"Sync success, {days} d", "value": percent(syncs["success_rate"]),
         "sub": f"{syncs['syncs']} syncs, {syncs['stopped']} stopped, {syncs['refused']} "
                "with refused writes", "tone": _tone(syncs["success_rate"])},
        {"label": "Sync duration p50 / p95",
         "value": f"{seconds(syncs['p50_ms'])} / {seconds(syncs['p95_ms'])}",
         "sub": f"over {days} d", "tone": ""},
        {"label": "Conflicted records now", "value": str(part.conflicts_now or 0),
         "sub": "on the server (conflicts view)",
         "tone": "warn" if part.conflicts_now else "good"},
        {"label": "Devices with pending changes", "value": str(part.devices_pending),
         "sub": f"{part.devices_silent} silent over {ago(summary.silent_after_seconds)}",
         "tone": "warn" if part.devices_silent else ""},
        {"label": f"Break-glass, {days} d", "value": str(part.break_glass),
         "sub": "grants to review (carecouch audit break-glass)",
         "tone": "warn" if part.break_glass else ""},
    ]


def _device(row: DeviceRow) -> dict[str, Any]:
    return {"device": row.device, "label": row.label or "", "clinician": row.clinician or "–",
            "caseloads": ", ".join(row.caseloads) or "–",
            "last_sync": when(row.last_sync_at), "result": row.last_result or "never",
            "pending": row.pending, "refused": row.refused, "conflicts": row.conflicts,
            "silent": ago(row.silent_seconds) if row.silent_seconds is not None else "–",
            "reasons": row.attention, "severity": SEVERITY.get(row.severity, "ok")}


def _caseload(part: CaseloadSummary) -> dict[str, Any]:
    syncs = part.syncs
    return {"id": part.caseload, "syncs": syncs["syncs"], "success": percent(
        syncs["success_rate"]), "tone": _tone(syncs["success_rate"]),
        "p50": seconds(syncs["p50_ms"]), "p95": seconds(syncs["p95_ms"]),
        "refused": sum(part.refusals.values()), "conflicts": part.conflicts_now,
        "devices": part.devices, "pending": part.devices_pending,
        "silent": part.devices_silent, "break_glass": part.break_glass}


def page_model(summary: Summary, devices: list[DeviceRow], *, caseload: str | None,
               days: int) -> dict[str, Any]:
    part = summary.caseloads[0] if caseload and summary.caseloads else summary.fleet
    daily = summary.daily
    labels = [d["day"] for d in daily]
    mine = [d for d in devices if caseload is None or caseload in d.caseloads]
    attention = [d for d in mine if d.severity > 0 and d.status == DeviceStatus.ACTIVE]
    success = charts.stacked_bars("Syncs per day by result", labels, [
        ("ok", OK, [d["ok"] for d in daily]),
        ("refused writes", REFUSED, [d["refused"] for d in daily]),
        ("stopped", STOPPED, [d["stopped"] for d in daily])])
    duration = charts.lines("Sync duration per day", labels, [
        ("p50", P50, [None if d["p50_ms"] is None else d["p50_ms"] / 1000 for d in daily]),
        ("p95", P95, [None if d["p95_ms"] is None else d["p95_ms"] / 1000 for d in daily])],
        unit="s")
    conflicts = charts.stacked_bars("Conflicted records per day", labels, [
        ("conflicted records (daily peak on the server)", CONFLICTS,
         [d["conflicts"] for d in daily])])
    rates = [d["success_rate"] for d in daily if d["success_rate"] is not None]
    return {
        "days": days, "caseload": caseload, "since": labels[0] if labels else "",
        "until": labels[-1] if labels else "", "generated": when(summary.now),
        "tiles": _tiles(summary, devices, days, part),
        "attention": [_device(d) for d in attention[:ATTENTION_SHOWN]],
        "attention_more": max(0, len(attention) - ATTENTION_SHOWN),
        "devices_total": len([d for d in mine if d.status == DeviceStatus.ACTIVE]),
        "charts": {"success": success, "duration": duration, "conflicts": conflicts},
        "worst_day": percent(min(rates)) if rates else "–",
        "caseloads": [_caseload(c) for c in summary.caseloads],
        "refusals": sorted(part.refusals.items(), key=lambda kv: -kv[1]),
        "activity": part.activity,
    }
