"""The bridge's Flask application factory.

``create_app(config=None)``: settings are the defaults, then the environment, then
``config`` (tests pass their own); nothing is read at import time. Production runs it under
gunicorn (``gunicorn 'bridge.app:create_app()'``, docker-compose.yml); development with
``carecouch-bridge serve``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from carecouch.errors import ConfigError, CouchUnauthorized, CouchUnreachable

from . import (
    break_glass,
    credentials,
    dashboard,
    devices,
    errors,
    failures,
    fleet,
    fleet_api,
    leases,
    metrics,
    openapi,
    policy_api,
    reports,
    services,
)
from .inputs import MAX_BODY
from .settings import DEFAULTS, from_environment


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app; raises :class:`ConfigError` (one line) when it cannot start."""
    app = Flask("bridge")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.config.update(DEFAULTS)
    app.config.update(from_environment())
    app.config.update(config or {})
    errors.init_app(app)
    try:
        built = services.init_app(app)
        fleet.init_app(app, built)
    except CouchUnreachable as exc:
        raise ConfigError(f"cannot start: {exc.reason}") from exc
    except CouchUnauthorized as exc:
        raise ConfigError("cannot start: CouchDB refused COUCHDB_USER / COUCHDB_PASSWORD "
                          f"({exc.reason})") from exc
    failures.init_app(app, built.settings.trusted_proxies)
    for module in (devices, credentials, break_glass, leases, policy_api, openapi, reports,
                   fleet_api, metrics, dashboard):
        app.register_blueprint(module.blueprint)
    return app
