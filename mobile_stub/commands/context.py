"""What every command shares: where the store is, how to unlock it, where credentials come
from, and how data is printed (JSON with ``--json``, text otherwise; diagnostics to stderr)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from carecouch.errors import ConfigError

from ..credentials import StaticCredentials
from ..device import Device
from ..errors import UnknownDatabase
from ..store import DeviceStore

DEFAULT_STORE = Path(".local/device/store.sqlite")


@dataclass
class DeviceContext:
    store_path: Path
    as_json: bool = False
    _store: DeviceStore | None = field(default=None, repr=False)

    def store(self, *, unlock: bool = True) -> DeviceStore:
        """The store, opened once; unlocked (passphrase from env or prompt) when asked."""
        if self._store is None:
            self._store = DeviceStore.open(self.store_path)
        if unlock and not self._store.unlocked:
            self._store.unlock(passphrase())
        return self._store

    def device(self) -> Device:
        """The device with the stand-in credentials provider (the bridge's comes later)."""
        return Device(self.store(), credentials_from_env())

    def database(self, name: str | None) -> str:
        """``name``, or the store's only database when none is given."""
        names = self.store(unlock=False).database_names()
        if name is not None:
            if name not in names:
                raise UnknownDatabase(f"the device holds no database {name!r} "
                                      f"(it holds: {', '.join(names) or 'none'})")
            return name
        if len(names) != 1:
            raise click.UsageError("the device holds several databases: name one with --db")
        return names[0]

    def close(self) -> None:
        if self._store is not None:
            self._store.close()

    def emit(self, data: Any, text: Callable[[Any], str] | None = None) -> None:
        """Data to stdout: JSON with --json (or when there is no text form), else text."""
        if self.as_json or text is None:
            click.echo(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False))
        else:
            click.echo(text(data))


pass_device = click.make_pass_decorator(DeviceContext)


def passphrase(*, confirm: bool = False) -> str:
    value = os.environ.get("CARECOUCH_DEVICE_PASSPHRASE")
    if value:
        return value
    entered: str = click.prompt("Store passphrase", hide_input=True,
                                confirmation_prompt=confirm, err=True)
    return entered


def credentials_from_env() -> StaticCredentials:
    """Until enrolment through the bridge: one CouchDB user from the environment."""
    user = os.environ.get("CARECOUCH_DEVICE_USER", "")
    password = os.environ.get("CARECOUCH_DEVICE_PASSWORD", "")
    if not user or not password:
        raise ConfigError("CARECOUCH_DEVICE_USER and CARECOUCH_DEVICE_PASSWORD must be set to "
                          "sync (until the device enrols through the bridge)")
    return StaticCredentials(user, password)
