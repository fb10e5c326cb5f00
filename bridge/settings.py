"""The bridge's settings: defaults, then the environment, then the caller's overrides.

Keys are the environment variables' own names (docs/configuration.md), so a test passes
``create_app({"CARECOUCH_BRIDGE_POLICY": path, ...})`` exactly as production sets them.
Secrets may be given inline or as a file (``NAME_FILE``, as Docker secrets are mounted). A
missing or unusable secret is a :class:`~carecouch.errors.ConfigError` with one line; nothing
falls back to a built-in secret.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carecouch.config import DEFAULT_COUCHDB_URL, SETTINGS, CouchSettings
from carecouch.errors import ConfigError
from carecouch.ids import InvalidName, check_user_id
from carecouch.signing import load_private_key

from .idp import IdpKey, load_idp_keys

DEFAULTS: dict[str, str] = {
    "COUCHDB_URL": DEFAULT_COUCHDB_URL,
    "CARECOUCH_BRIDGE_COUCHDB_USER": "carecouch-bridge",
    "CARECOUCH_BRIDGE_IDP_USER_CLAIM": "sub",
    "CARECOUCH_BRIDGE_IDP_GROUPS_CLAIM": "groups",
    "CARECOUCH_BRIDGE_RATE_LIMIT": "60/60",
    # A burst every tablet behind one hospital NAT can spend at once (an expired token each,
    # a retry), then one failure a second: an attacker's steady cost is one a second.
    "CARECOUCH_BRIDGE_FAILURE_LIMIT": "600/600",
    "CARECOUCH_BRIDGE_TRUSTED_PROXIES": "0",
    "CARECOUCH_BRIDGE_CLOCK_SKEW": "300",
    "CARECOUCH_BRIDGE_REAP_INTERVAL": "60",
}
_RATE = re.compile(r"^\s*([0-9]{1,6})\s*/\s*([0-9]{1,6})\s*$")


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The settings the environment sets (only names carecouch knows)."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if k in SETTINGS}


@dataclass(frozen=True)
class BridgeSettings:
    # Secrets stay out of repr(): settings end up in tracebacks and debug logs.
    couch: CouchSettings = field(repr=False)
    public_couchdb_url: str
    bridge_user: str
    bridge_password: str = field(repr=False)
    policy_file: Path
    signing_key: Ed25519PrivateKey = field(repr=False)
    idp_keys: tuple[IdpKey, ...]
    idp_issuer: str
    idp_audience: str
    user_claim: str
    groups_claim: str
    rate_count: int
    rate_seconds: int
    failure_count: int
    failure_seconds: int
    trusted_proxies: int
    clock_skew: int
    reap_interval: float

    @classmethod
    def load(cls, values: Mapping[str, Any]) -> BridgeSettings:
        get = _Getter(values)
        couch = CouchSettings.from_env({k: str(v) for k, v in values.items()
                                        if k.startswith("COUCHDB_") and v is not None})
        policy = get.required("CARECOUCH_BRIDGE_POLICY", "the access-policy YAML file")
        signing = get.secret("CARECOUCH_BRIDGE_SIGNING_KEY", "the bridge's Ed25519 signing key")
        keys_file = get.required("CARECOUCH_BRIDGE_IDP_KEYS_FILE",
                                 "the identity provider's public keys (PEM or JWKS)")
        rate = get.rate("CARECOUCH_BRIDGE_RATE_LIMIT", "<requests>/<seconds>, e.g. 60/60")
        failures = get.rate("CARECOUCH_BRIDGE_FAILURE_LIMIT",
                            "<failures>/<seconds>, e.g. 600/600")
        return cls(
            couch=couch,
            public_couchdb_url=(get.text("CARECOUCH_BRIDGE_PUBLIC_COUCHDB_URL")
                                or couch.url).rstrip("/"),
            bridge_user=_bridge_user(get.text("CARECOUCH_BRIDGE_COUCHDB_USER")),
            bridge_password=get.secret("CARECOUCH_BRIDGE_COUCHDB_PASSWORD",
                                       "the bridge's own CouchDB password").decode(),
            policy_file=Path(policy),
            signing_key=load_private_key(signing, "CARECOUCH_BRIDGE_SIGNING_KEY"),
            idp_keys=load_idp_keys(Path(keys_file)),
            idp_issuer=get.required("CARECOUCH_BRIDGE_IDP_ISSUER",
                                    "the identity provider's issuer (iss)"),
            idp_audience=get.required("CARECOUCH_BRIDGE_IDP_AUDIENCE",
                                      "the audience (aud) the identity provider issues "
                                      "bridge tokens for"),
            user_claim=get.text("CARECOUCH_BRIDGE_IDP_USER_CLAIM"),
            groups_claim=get.text("CARECOUCH_BRIDGE_IDP_GROUPS_CLAIM"),
            rate_count=rate[0], rate_seconds=rate[1],
            failure_count=failures[0], failure_seconds=failures[1],
            trusted_proxies=get.number("CARECOUCH_BRIDGE_TRUSTED_PROXIES", 0, 10,
                                       "proxy hops"),
            clock_skew=get.number("CARECOUCH_BRIDGE_CLOCK_SKEW", 5, 3600),
            reap_interval=get.number("CARECOUCH_BRIDGE_REAP_INTERVAL", 0, 86400))


def _bridge_user(name: str) -> str:
    """A plain CouchDB user name: no "~" (device sessions) and no ":"."""
    try:
        return check_user_id(name)
    except InvalidName as exc:
        raise ConfigError(f"CARECOUCH_BRIDGE_COUCHDB_USER: {exc}") from exc


class _Getter:
    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values

    def text(self, name: str) -> str:
        value = self.values.get(name)
        return "" if value is None else str(value).strip()

    def required(self, name: str, what: str) -> str:
        value = self.text(name)
        if not value:
            raise ConfigError(f"{name} not set: {what} is required (see .env.example)")
        return value

    def secret(self, name: str, what: str) -> bytes:
        """``NAME`` (the value) or ``NAME_FILE`` (a file holding it)."""
        inline = self.text(name)
        if inline:
            return inline.encode()
        path = self.text(f"{name}_FILE")
        if not path:
            raise ConfigError(f"{name} (or {name}_FILE) not set: {what} is required "
                              "(see .env.example)")
        try:
            data = Path(path).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE: cannot read {path} ({exc.strerror})") from exc
        if not data:
            raise ConfigError(f"{name}_FILE: {path} is empty")
        return data

    def number(self, name: str, low: int, high: int, unit: str = "seconds") -> int:
        raw = self.text(name)
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise ConfigError(f"{name} must be a whole number of {unit} from {low} to {high}")
        return int(raw)

    def rate(self, name: str, form: str) -> tuple[int, int]:
        """``<count>/<seconds>``, both at least 1."""
        match = _RATE.match(self.text(name))
        if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
            raise ConfigError(f"{name} must be {form}")
        return int(match.group(1)), int(match.group(2))
