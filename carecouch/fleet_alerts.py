"""Alert rules kept as data (a YAML file), checked against the fleet: ``carecouch fleet check``.

A rule names a metric, what it is measured over (``per``: the fleet, each caseload, each
device), the window it looks back over, and its threshold. Every breach is one line; the
command exits 1 when there is any, so cron or a monitoring system can run it. The shipped
rules (``carecouch/fleet_data/alerts.yaml``) are the defaults and the example; the format is
in docs/fleet.md, "Alert rules". A mistake in a rules file is refused with its line, as a
policy file's is.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from .clock import format_utc
from .couch import CouchClient
from .devices import DeviceStatus
from .errors import CarecouchError
from .fleet import FleetStore
from .fleet_summary import (
    CaseloadSummary,
    DeviceRow,
    Summary,
    ago,
    fleet_devices,
    fleet_summary,
)
from .policy_file import Reader, format_duration

DEFAULT_RULES = Path(__file__).resolve().parent / "fleet_data" / "alerts.yaml"
MAX_WINDOW = 400 * 86400

# metric -> (what it is measured over, the threshold key, the keys it takes)
METRICS: dict[str, tuple[tuple[str, ...], str | None, tuple[str, ...]]] = {
    "success_rate": (("fleet", "caseload"), "below", ("window", "min_syncs")),
    "p50_duration": (("fleet", "caseload"), "above", ("window", "min_syncs")),
    "p95_duration": (("fleet", "caseload"), "above", ("window", "min_syncs")),
    "break_glass": (("fleet", "caseload"), "above", ("window",)),
    "refused_syncs": (("fleet", "caseload"), "above", ("window",)),
    "conflicts": (("fleet", "caseload"), "above", ()),
    "devices_pending": (("fleet", "caseload"), "above", ()),
    "silent": (("device",), None, ("silent_for",)),
    "silent_with_pending": (("device",), None, ("silent_for",)),
    "refused_writes": (("device",), "above", ()),
    "offline_window_passed": (("device",), None, ()),
}


class RulesError(CarecouchError):
    """A rules file that cannot be used; ``<file>:<line>: <reason>``."""


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    per: str
    window: int = 86400            # seconds
    threshold: float | None = None
    min_syncs: int = 1
    silent_for: int = 3 * 86400


@dataclass(frozen=True)
class Breach:
    rule: str
    metric: str
    scope: str            # "fleet", "caseload <id>", "device <id>"
    value: Any
    threshold: Any
    line: str

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "metric": self.metric, "scope": self.scope,
                "value": self.value, "threshold": self.threshold, "message": self.line}


def load_rules(path: Path | None = None) -> list[Rule]:
    path = path or DEFAULT_RULES
    reader = Reader(str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"{path}: cannot read ({exc.strerror})") from exc
    if not text.strip():
        raise RulesError(f"{path}: the rules file is empty")
    try:
        root = reader.mapping(reader.compose(text), "the rules file", ("version", "rules"),
                             ("version", "rules"))
        if reader.text(root["version"][1], "version") != "1":
            raise reader.fail(root["version"][1], "version must be 1")
        items = root["rules"][1]
        if not isinstance(items, yaml.SequenceNode) or not items.value:
            raise reader.fail(items, "rules must be a list of at least one rule")
        rules = [_rule(reader, node) for node in items.value]
    except CarecouchError as exc:
        raise RulesError(str(exc)) from exc
    names = [r.name for r in rules]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise RulesError(f"{path}: rule name {repeated[0]!r} is used twice")
    return rules


def _rule(reader: Reader, node: yaml.Node) -> Rule:
    keys = ("name", "metric", "per", "window", "below", "above", "min_syncs", "silent_for")
    found = reader.mapping(node, "a rule", keys, ("name", "metric"))
    name = reader.text(found["name"][1], "name", max_length=120)
    metric_node = found["metric"][1]
    metric = reader.text(metric_node, f"{name}: metric")
    if metric not in METRICS:
        raise reader.fail(metric_node, f"{name}: unknown metric {metric!r} (one of "
                          f"{', '.join(METRICS)})")
    scopes, threshold_key, extra = METRICS[metric]
    allowed = {"name", "metric", "per", *extra, *([threshold_key] if threshold_key else [])}
    for key, (key_node, _) in found.items():
        if key not in allowed:
            raise reader.fail(key_node, f"{name}: {metric} takes no {key!r}")
    per = reader.text(found["per"][1], f"{name}: per") if "per" in found else scopes[0]
    if per not in scopes:
        raise reader.fail(found["per"][1], f"{name}: {metric} is measured per "
                          f"{' or per '.join(scopes)}")
    kwargs: dict[str, Any] = {}
    if threshold_key:
        if threshold_key not in found:
            raise reader.fail(node, f"{name}: {metric} needs {threshold_key!r}")
        kwargs["threshold"] = reader.checked(found[threshold_key][1], f"{name}: "
                                             f"{threshold_key}", _number)
    if "window" in found:
        kwargs["window"] = reader.duration(found["window"][1], f"{name}: window", low=60,
                                           high=MAX_WINDOW)
    if "silent_for" in found:
        kwargs["silent_for"] = reader.duration(found["silent_for"][1], f"{name}: silent_for",
                                               low=1, high=MAX_WINDOW)
    if "min_syncs" in found:
        kwargs["min_syncs"] = int(reader.checked(found["min_syncs"][1], f"{name}: min_syncs",
                                                 _number))
    return Rule(name=name, metric=metric, per=per, **kwargs)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise ValueError(f"{text!r} must be a number of at least 0")
    return value


def check(client: CouchClient, store: FleetStore, rules: list[Rule], *,
          now: datetime | None = None) -> list[Breach]:
    """Every breach of ``rules`` now; one summary is read per distinct window."""
    now = now or datetime.now(UTC)
    devices = fleet_devices(client, store, now=now)
    summaries: dict[int, Summary] = {}
    breaches: list[Breach] = []
    for rule in rules:
        if rule.per == "device":
            breaches += [b for d in devices if (b := _device(rule, d, now)) is not None]
            continue
        if rule.window not in summaries:
            summaries[rule.window] = fleet_summary(
                client, store, since=now - timedelta(seconds=rule.window), now=now,
                devices=devices)
        summary = summaries[rule.window]
        parts = [summary.fleet] if rule.per == "fleet" else summary.caseloads
        breaches += [b for part in parts if (b := _aggregate(rule, part)) is not None]
    return breaches


def _aggregate(rule: Rule, part: CaseloadSummary) -> Breach | None:
    scope = "fleet" if part.caseload is None else f"caseload {part.caseload}"
    syncs = part.syncs
    over = f" over {format_duration(rule.window)}"
    threshold = rule.threshold
    assert threshold is not None
    if rule.metric in ("success_rate", "p50_duration", "p95_duration"):
        if syncs["syncs"] < rule.min_syncs:
            return None
    if rule.metric == "success_rate":
        value = syncs["success_rate"]
        if value is None or value >= threshold:
            return None
        text = (f"{value:.1%} of {syncs['syncs']} syncs succeeded{over} (below "
                f"{threshold:.1%})")
    elif rule.metric in ("p50_duration", "p95_duration"):
        ms = syncs[rule.metric[:3] + "_ms"]
        if ms is None or ms / 1000 <= threshold:
            return None
        value = round(ms / 1000, 1)
        text = f"{rule.metric[:3]} sync duration {value} s{over} (above {threshold:g} s)"
    else:
        value = {"break_glass": part.break_glass, "refused_syncs": syncs["refused"],
                 "conflicts": part.conflicts_now or 0,
                 "devices_pending": part.devices_pending}[rule.metric]
        if value <= threshold:
            return None
        what = {"break_glass": "break-glass grants", "refused_syncs": "syncs with refused "
                "writes", "conflicts": "conflicted records",
                "devices_pending": "devices with pending changes"}[rule.metric]
        text = f"{value} {what}" + (over if rule.metric in ("break_glass", "refused_syncs")
                                    else "") + f" (above {threshold:g})"
    return Breach(rule.name, rule.metric, scope, value, threshold, f"{rule.name}: {scope}: "
                  f"{text}")


def _device(rule: Rule, row: DeviceRow, now: datetime) -> Breach | None:
    if row.status != DeviceStatus.ACTIVE:
        return None
    silent = row.silent_seconds or 0
    threshold: Any = rule.threshold
    if rule.metric in ("silent", "silent_with_pending"):
        threshold = rule.silent_for
        if silent < rule.silent_for or (rule.metric == "silent_with_pending"
                                        and not row.pending):
            return None
        value: Any = silent
        text = f"silent for {ago(silent)}" + (
            f" with {row.pending} pending changes" if row.pending else "") + \
            f" (over {format_duration(rule.silent_for)})"
    elif rule.metric == "refused_writes":
        if rule.threshold is None or row.refused <= rule.threshold:
            return None
        value = row.refused
        text = f"{row.refused} refused writes waiting (above {rule.threshold:g})"
    else:  # offline_window_passed
        if not row.offline_until or row.offline_until > format_utc(now):
            return None
        value = row.offline_until
        text = f"its offline window passed at {row.offline_until}: it cannot record"
    who = f" ({row.clinician})" if row.clinician else ""
    return Breach(rule.name, rule.metric, f"device {row.device}", value, threshold,
                  f"{rule.name}: device {row.device}{who}: {text}")
