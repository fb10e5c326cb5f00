"""Configuration from the environment, with an optional ``.env`` file.

The server settings use the names of the official CouchDB image (``COUCHDB_URL``,
``COUCHDB_USER``, ``COUCHDB_PASSWORD``) so one env file serves ``docker-compose.yml`` and the
programs; everything else is ``CARECOUCH_*``. Nothing here has a built-in secret: a missing one
is a :class:`~carecouch.errors.ConfigError` with a one-line message.

Reading happens when a program asks, never at import time, so tests can set variables freely.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

DEFAULT_COUCHDB_URL = "http://127.0.0.1:5984"
# The couch directory: design documents, record rules and the record-type registry as files.
COUCH_DIR_VARIABLE = "CARECOUCH_COUCH_DIR"


def default_couch_dir() -> Path:
    """``$CARECOUCH_COUCH_DIR``, else the project's own ``couch/``."""
    named = os.environ.get(COUCH_DIR_VARIABLE)
    if named:
        return Path(named)
    return Path(__file__).resolve().parent.parent / "couch"

# Every environment variable a carecouch program reads, and what it is for. Add a name here
# before reading it anywhere: tests check that the code, .env.example, docs/configuration.md
# and docker-compose.yml use only these names.
SETTINGS: dict[str, str] = {
    "COUCHDB_URL": "CouchDB server URL (default http://127.0.0.1:5984)",
    "COUCHDB_USER": "CouchDB server admin name (required)",
    "COUCHDB_PASSWORD": "CouchDB server admin password (required, secret)",
    "CARECOUCH_ENV_FILE": "env file to read instead of ./.env",
    "CARECOUCH_HOME": "checkout holding embedded_server/ and node_modules/ (default: found "
                      "from the installed package)",
    "CARECOUCH_DATA_DIR": "embedded server data directory (default .local/couch)",
    "CARECOUCH_PORT": "embedded server port on 127.0.0.1 (default 5984)",
    "CARECOUCH_DEVICE_STORE": "carecouch-device: the encrypted store file (default "
                              ".local/device/store.sqlite)",
    "CARECOUCH_DEVICE_PASSPHRASE": "carecouch-device: passphrase of the store (secret; "
                                   "prompted for when unset)",
    "CARECOUCH_DEVICE_USER": "carecouch-device: CouchDB user to replicate as, for a store "
                             "not enrolled with the bridge (development)",
    "CARECOUCH_DEVICE_PASSWORD": "carecouch-device: that user's password (secret)",
    "CARECOUCH_DEVICE_BRIDGE": "carecouch-device enrol: the bridge's URL",
    "CARECOUCH_DEVICE_IDP_TOKEN": "carecouch-device: the clinician's identity-provider token "
                                  "for the bridge (secret; kept encrypted for renewals)",
    "CARECOUCH_COUCH_DIR": "couch/ directory the caseload design documents are assembled "
                           "from (default: the project's couch/)",
    # carecouch-bridge (docs/bridge.md). Secrets may also be given as NAME_FILE.
    "CARECOUCH_BRIDGE_POLICY": "bridge: the access-policy YAML file (required)",
    "CARECOUCH_BRIDGE_SIGNING_KEY": "bridge: Ed25519 signing key, base64url 32-byte seed "
                                    "(secret; or use CARECOUCH_BRIDGE_SIGNING_KEY_FILE)",
    "CARECOUCH_BRIDGE_SIGNING_KEY_FILE": "bridge: file holding the Ed25519 signing key (PEM)",
    "CARECOUCH_BRIDGE_IDP_KEYS_FILE": "bridge: identity provider's public keys, PEM bundle or "
                                      "JWKS (required)",
    "CARECOUCH_BRIDGE_IDP_ISSUER": "bridge: the identity provider's issuer, JWT iss (required)",
    "CARECOUCH_BRIDGE_IDP_AUDIENCE": "bridge: the JWT aud the bridge accepts (required)",
    "CARECOUCH_BRIDGE_IDP_USER_CLAIM": "bridge: JWT claim naming the user (default sub)",
    "CARECOUCH_BRIDGE_IDP_GROUPS_CLAIM": "bridge: JWT claim listing groups (default groups)",
    "CARECOUCH_BRIDGE_COUCHDB_USER": "bridge: its own CouchDB user, role carecouch:bridge "
                                     "(default carecouch-bridge)",
    "CARECOUCH_BRIDGE_COUCHDB_PASSWORD": "bridge: that user's password (secret, required)",
    "CARECOUCH_BRIDGE_COUCHDB_PASSWORD_FILE": "bridge: file holding that password",
    "CARECOUCH_BRIDGE_PUBLIC_COUCHDB_URL": "bridge: CouchDB URL devices use (default "
                                           "COUCHDB_URL)",
    "CARECOUCH_BRIDGE_RATE_LIMIT": "bridge: requests/seconds per user and per device, per "
                                   "instance (default 60/60)",
    "CARECOUCH_BRIDGE_FAILURE_LIMIT": "bridge: failed authentications/seconds per client "
                                      "address, per instance (default 600/600)",
    "CARECOUCH_BRIDGE_TRUSTED_PROXIES": "bridge: how many proxies in front of it append "
                                        "X-Forwarded-For (default 0: the header is ignored)",
    "CARECOUCH_BRIDGE_CLOCK_SKEW": "bridge: seconds a signed request's timestamp may be off "
                                   "(default 300)",
    "CARECOUCH_BRIDGE_REAP_INTERVAL": "bridge: seconds between reaper passes; 0 disables "
                                      "(default 60)",
    "CARECOUCH_BRIDGE_PORT": "carecouch-bridge serve: port (default 8765)",
    "CARECOUCH_BRIDGE_METRICS_TOKEN": "bridge: bearer token a Prometheus scraper sends to GET "
                                      "/metrics (secret; unset: /metrics answers 404)",
    "CARECOUCH_BRIDGE_METRICS_TOKEN_FILE": "bridge: file holding that token",
    # Fleet health (docs/fleet.md): the bridge and `carecouch fleet`.
    "CARECOUCH_FLEET_RETENTION": "days device sync reports are kept (default 30)",
    "CARECOUCH_FLEET_ALERTS": "carecouch fleet check: the alert rules file (default: the "
                              "shipped rules)",
}

# Variables only the official CouchDB image reads (docker-compose.yml, production.env).
IMAGE_ONLY_VARIABLES = frozenset({"NODENAME", "COUCHDB_SECRET", "COUCHDB_ERLANG_COOKIE"})
ENV_FILE_VARIABLE = "CARECOUCH_ENV_FILE"

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines as docker compose reads them: ``#`` comments, optional quotes."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE, got {line.strip()!r}")
        key, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def load_env_file(environ: MutableMapping[str, str] | None = None,
                  path: Path | None = None) -> Path | None:
    """Fill ``environ`` from ``$CARECOUCH_ENV_FILE`` or ``./.env``; set variables win.

    Returns the file read, if any.
    """
    environ = os.environ if environ is None else environ
    if path is None:
        named = environ.get(ENV_FILE_VARIABLE)
        path = Path(named) if named else Path.cwd() / ".env"
        if named and not path.is_file():
            raise ConfigError(f"{ENV_FILE_VARIABLE} names {path}, which is not a file")
    if not path.is_file():
        return None
    for key, value in parse_env_file(path).items():
        environ.setdefault(key, value)
    return path


@dataclass(frozen=True)
class CouchSettings:
    url: str
    user: str
    password: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CouchSettings:
        environ = os.environ if environ is None else environ
        url = environ.get("COUCHDB_URL") or DEFAULT_COUCHDB_URL
        user = environ.get("COUCHDB_USER", "")
        password = environ.get("COUCHDB_PASSWORD", "")
        if not user or not password:
            missing = [n for n, v in (("COUCHDB_USER", user), ("COUCHDB_PASSWORD", password))
                       if not v]
            raise ConfigError(
                f"{' and '.join(missing)} not set: the CouchDB admin credentials are required "
                "(see .env.example)")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"COUCHDB_URL must be an http(s) URL, got {url!r}")
        return cls(url=url.rstrip("/"), user=user, password=password)
