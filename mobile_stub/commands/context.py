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

from carecouch import prompts
from carecouch.couch import split_credentials
from carecouch.errors import ConfigError

from ..credentials import StaticCredentials
from ..device import Device
from ..enrolment import BRIDGE_URL
from ..errors import DeviceRevoked, UnknownDatabase
from ..session import BridgeSession
from ..store import DeviceStore

DEFAULT_STORE = Path(".local/device/store.sqlite")
TOKEN_VARIABLE = "CARECOUCH_DEVICE_IDP_TOKEN"


@dataclass
class DeviceContext:
    store_path: Path
    as_json: bool = False
    _store: DeviceStore | None = field(default=None, repr=False)
    _session: BridgeSession | None = field(default=None, repr=False)

    def store(self, *, unlock: bool = True) -> DeviceStore:
        """The store, opened once; unlocked (passphrase from env or prompt) when asked."""
        if self._store is None:
            self._store = DeviceStore.open(self.store_path)
        if unlock and not self._store.unlocked:
            self._store.unlock(passphrase())
        return self._store

    def enrolled(self) -> bool:
        return self.store(unlock=False).get_meta(BRIDGE_URL) is not None

    def session(self, token: str | None = None) -> BridgeSession:
        """The clinician's bridge session (identity token: ``token``, else
        $CARECOUCH_DEVICE_IDP_TOKEN, else the last one kept in the store)."""
        if self._session is None or token:
            self._session = BridgeSession(self.store(),
                                          token=token or os.environ.get(TOKEN_VARIABLE))
        return self._session

    def device(self) -> Device:
        """An enrolled device works under its bridge session and snapshot; a store that is
        not enrolled (development) replicates as the user in the environment."""
        if not self.enrolled():
            return Device(self.store(), credentials_from_env())
        session = self.session()
        session.bind_databases()
        return session.device()

    @property
    def revoked(self) -> DeviceRevoked | None:
        return self._session.revoked if self._session is not None else None

    def wipe(self) -> None:
        """Destroy the store's key and files (``wipe``, and a revoked device)."""
        self.store(unlock=False).wipe()
        self._store = self._session = None

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
db_option = click.option("--db", "database", metavar="NAME",
                         help="Database of the record (default: the device's only one).")


def passphrase(*, confirm: bool = False) -> str:
    value = os.environ.get("CARECOUCH_DEVICE_PASSPHRASE")
    if value:
        return value
    return prompts.secret("Store passphrase", repeat=confirm,
                          otherwise="set CARECOUCH_DEVICE_PASSPHRASE")


def credentials_from_env() -> StaticCredentials:
    """A store not enrolled with a bridge: one CouchDB user from the environment."""
    user = os.environ.get("CARECOUCH_DEVICE_USER", "")
    password = os.environ.get("CARECOUCH_DEVICE_PASSWORD", "")
    if not user or not password:
        raise ConfigError("CARECOUCH_DEVICE_USER and CARECOUCH_DEVICE_PASSWORD must be set to "
                          "sync a device that is not enrolled (or run `carecouch-device "
                          "enrol`)")
    return StaticCredentials(user, password)


def checked_url(url: str, param_hint: str, identity_from: str) -> str:
    """An http(s) URL without credentials in it (they come from ``identity_from``)."""
    try:
        base, user, password = split_credentials(url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=param_hint) from exc
    if user or password:
        raise click.BadParameter(f"give the URL without credentials; they come from "
                                 f"{identity_from}", param_hint=param_hint)
    return base


def field_values(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--set FIELD=VALUE`` pairs; VALUE is read as JSON when it is JSON, else as text."""
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{pair!r}: use FIELD=VALUE", param_hint="--set")
        if name.startswith("_") or name == "type":
            raise click.BadParameter(f"{name} is not a field you set", param_hint="--set")
        try:
            values[name] = json.loads(raw)
        except ValueError:
            values[name] = raw
    return values
