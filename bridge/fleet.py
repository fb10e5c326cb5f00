"""Fleet health in the bridge: its settings, the fleet store, and its periodic work.

Hung on ``app.extensions["carecouch.fleet"]``. The bridge keeps nothing itself: reports,
device statuses and samples are in CouchDB (carecouch/fleet.py), so any instance answers
the same. Each process's reaper thread also drops report databases past the retention period
and takes the hourly caseload sample (the first instance to write an hour's sample wins).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from flask import Flask, current_app

from carecouch.clock import utc_now
from carecouch.errors import ConfigError
from carecouch.fleet import FleetStore, retention_days
from carecouch.fleet_read import ensure_audit_views, take_samples

from .services import Services
from .settings import _Getter

log = logging.getLogger("carecouch.bridge")
EXTENSION = "carecouch.fleet"
MIN_TOKEN = 24


@dataclass
class Fleet:
    store: FleetStore
    metrics_token: str | None = field(repr=False)
    _sampled_hour: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def periodic(self) -> None:
        """Retention, then this hour's sample if this process has not taken it."""
        self.store.drop_expired()
        hour = utc_now()[:13]
        with self._lock:
            if hour == self._sampled_hour:
                return
            self._sampled_hour = hour
        take_samples(self.store.client, self.store)


def fleet() -> Fleet:
    found: Fleet = current_app.extensions[EXTENSION]
    return found


def init_app(app: Flask, built: Services) -> Fleet:
    try:
        found = _build(app, built)
        found.store.ensure()
        ensure_audit_views(built.admin)
    except BaseException:
        built.close()  # a bridge that cannot start leaves no connection or thread behind
        raise
    app.extensions[EXTENSION] = found
    if built.reaper is not None:
        built.reaper.tasks.append(found.periodic)
    return found


def _build(app: Flask, built: Services) -> Fleet:
    get = _Getter(app.config)
    token: str | None = None
    if get.text("CARECOUCH_BRIDGE_METRICS_TOKEN") or \
            get.text("CARECOUCH_BRIDGE_METRICS_TOKEN_FILE"):
        token = get.secret("CARECOUCH_BRIDGE_METRICS_TOKEN", "the metrics token").decode()
        if len(token) < MIN_TOKEN:
            raise ConfigError(f"CARECOUCH_BRIDGE_METRICS_TOKEN must be at least {MIN_TOKEN} "
                              "characters (e.g. 32 random bytes, base64url)")
    retention = retention_days(get.text("CARECOUCH_FLEET_RETENTION") or None)
    return Fleet(FleetStore(built.admin, retention_days=retention), token)
