"""WSGI entry point for gunicorn (``gunicorn bridge.wsgi:app``): builds the app from the
environment, or stops with one line naming what is missing."""

from __future__ import annotations

import sys

from carecouch.errors import ConfigError

from .app import create_app

try:
    app = create_app()
except ConfigError as _exc:
    print(f"carecouch-bridge: error: {_exc}", file=sys.stderr)
    sys.exit(1)
