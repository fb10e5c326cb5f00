"""The object every command receives: settings and a CouchDB client, built once, lazily.

Lazily, so ``carecouch --help`` and ``carecouch server stop`` work without credentials.
"""

from __future__ import annotations

import click

from carecouch.config import CouchSettings
from carecouch.couch import CouchClient


class AppContext:
    def __init__(self) -> None:
        self._settings: CouchSettings | None = None
        self._client: CouchClient | None = None

    @property
    def settings(self) -> CouchSettings:
        if self._settings is None:
            self._settings = CouchSettings.from_env()
        return self._settings

    @property
    def client(self) -> CouchClient:
        if self._client is None:
            s = self.settings
            self._client = CouchClient(s.url, s.user, s.password)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


pass_app = click.make_pass_decorator(AppContext, ensure=True)
