"""What every request handler uses, built once per process by :func:`init_app`.

Hung on ``app.extensions["carecouch"]``: settings, CouchDB clients (the server admin for
``_users``, the registry, nonces and the audit trail; the bridge's own CouchDB user for caseload
databases), the policy (reloaded when its file changes), the signing key, the identity
verifier, the rate limiters (per user and device; failures per address) and the reaper.
Tests may set ``RATE_LIMIT_CLOCK`` (monotonic seconds) to refill buckets without sleeping.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask, current_app

from carecouch import provenance
from carecouch.audit import AuditLog
from carecouch.couch import CouchClient, Doc
from carecouch.credentials import CredentialStore
from carecouch.devices import DeviceRegistry
from carecouch.errors import ConfigError, CouchUnauthorized
from carecouch.ids import BRIDGE_ROLE, user_doc_id
from carecouch.nonces import NonceStore
from carecouch.policy import Policy, PolicyError, load_policy
from carecouch.provenance import BRIDGE_SIGNER
from carecouch.records import Registry, load_registry
from carecouch.registry import CaseloadRegistry
from carecouch.signer_keys import publish_bridge_key
from carecouch.signing import Signer

from .idp import IdentityVerifier
from .ratelimit import RateLimiter
from .reaper import Reaper
from .settings import BridgeSettings

log = logging.getLogger("carecouch.bridge")
EXTENSION = "carecouch"


class PolicyStore:
    """The last good policy; re-read when the file's mtime or size changes. A bad edit is
    logged and reported on /healthz, and the bridge keeps serving the previous policy."""

    def __init__(self, path: Path, registry: Registry) -> None:
        self.path = path
        self.registry = registry
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self.failure: PolicyError | None = None  # why the last edit was refused
        try:
            self._policy = load_policy(path, registry)
        except PolicyError as exc:
            raise ConfigError(f"CARECOUCH_BRIDGE_POLICY: {exc}") from exc

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def get(self) -> Policy:
        stamp = self._stat()
        with self._lock:
            if stamp is not None and stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._policy = load_policy(self.path, self.registry)
                    self.failure = None
                    log.info("policy reloaded (version %s)", self._policy.version)
                except PolicyError as exc:
                    self.failure = exc
                    log.error("policy not reloaded, keeping version %s: %s",
                              self._policy.version, exc)
            return self._policy

    @property
    def error(self) -> str | None:
        """The refused edit in full: ``<file>:<line>: <reason>`` (for the log and IT)."""
        return None if self.failure is None else str(self.failure)

    @property
    def public_error(self) -> str | None:
        """What /healthz, which anyone may call, says of it: where, not what (the reason can
        quote user and group names from the policy)."""
        if self.failure is None:
            return None
        where = Path(self.failure.source).name + (f":{self.failure.line}"
                                                  if self.failure.line else "")
        return (f"{where}: the last edit was refused; the bridge keeps version "
                f"{self._policy.version} (reason in the bridge's log; carecouch policy check)")


@dataclass
class Services:
    settings: BridgeSettings
    admin: CouchClient
    couch: CouchClient  # as the bridge's own CouchDB user
    policy: PolicyStore
    records: Registry
    signer: Signer
    identity: IdentityVerifier
    limiter: RateLimiter
    failures: RateLimiter  # failed authentications per client address (bridge/failures.py)
    devices: DeviceRegistry = field(init=False)
    nonces: NonceStore = field(init=False)
    credentials: CredentialStore = field(init=False)
    caseloads: CaseloadRegistry = field(init=False)
    reaper: Reaper | None = None

    def __post_init__(self) -> None:
        self.devices = DeviceRegistry(self.admin)
        self.nonces = NonceStore(self.admin)
        self.credentials = CredentialStore(self.admin)
        self.caseloads = CaseloadRegistry(self.admin)

    def audit(self, actor: str) -> AuditLog:
        return AuditLog(self.admin, actor)

    def sign_record(self, doc: Doc) -> Doc:
        """An exclusive record the bridge writes, signed as the bridge (provenance.py)."""
        return provenance.sign(doc, self.signer.private, BRIDGE_SIGNER)

    def close(self) -> None:
        if self.reaper is not None:
            self.reaper.stop()
        self.admin.close()
        self.couch.close()


def services() -> Services:
    found: Services = current_app.extensions[EXTENSION]
    return found


def init_app(app: Flask) -> Services:
    settings = BridgeSettings.load(app.config)
    records = load_registry()
    policy = PolicyStore(settings.policy_file, records)  # before any connection is opened
    s = settings.couch
    clock = app.config.get("RATE_LIMIT_CLOCK") or time.monotonic
    built = Services(
        settings=settings, admin=CouchClient(s.url, s.user, s.password),
        couch=CouchClient(s.url, settings.bridge_user, settings.bridge_password, retries=1),
        policy=policy, records=records,
        signer=Signer(settings.signing_key),
        identity=IdentityVerifier(settings.idp_keys, settings.idp_issuer,
                                  settings.idp_audience, settings.user_claim,
                                  settings.groups_claim),
        limiter=RateLimiter(settings.rate_count, settings.rate_seconds, clock=clock),
        failures=RateLimiter(settings.failure_count, settings.failure_seconds,
                             what="failed requests", clock=clock))
    try:
        _prepare_couchdb(built)
    except BaseException:
        built.close()  # a bridge that cannot start leaves no connection open behind it
        raise
    app.extensions[EXTENSION] = built
    if settings.reap_interval > 0:
        # Started now, not by the first request: an idle bridge must reap too, or expired
        # credentials would keep working until someone happens to call it.
        built.reaper = Reaper(built.admin, built.nonces, settings.reap_interval)
        built.reaper.start()

        @app.before_request
        def _reaper_alive() -> None:
            # A fork (gunicorn --preload) keeps only the forking thread: restart it here.
            if built.reaper is not None:
                built.reaper.start()

    return built


def _prepare_couchdb(built: Services) -> None:
    """The registry and audit databases exist, and the bridge's own CouchDB user works."""
    built.caseloads.ensure()
    built.audit("bridge").ensure()
    publish_bridge_key(built.admin, built.signer.public)  # audit verify checks its records
    settings = built.settings
    try:
        if BRIDGE_ROLE in (built.couch.session()["userCtx"].get("roles") or []):
            return
    except CouchUnauthorized:
        pass  # not created yet, or another password: (re)write it below
    existing = built.admin.get_user(settings.bridge_user) or {}
    if existing and existing.get("roles") != [BRIDGE_ROLE]:
        # Someone's account (or a device session) of that name: taking it over would hand
        # its owner the bridge's role, or the bridge theirs.
        raise ConfigError(f"CARECOUCH_BRIDGE_COUCHDB_USER: CouchDB user {settings.bridge_user}"
                          " exists and is not the bridge's (its roles are "
                          f"{existing.get('roles')}); choose another name")
    built.admin.put_user({**existing, "_id": user_doc_id(settings.bridge_user), "type": "user",
               "name": settings.bridge_user, "roles": [BRIDGE_ROLE],
               "password": settings.bridge_password})
    # CouchDB refreshes its authentication cache asynchronously.
    deadline = time.monotonic() + 15
    while True:
        try:
            if BRIDGE_ROLE in built.couch.session()["userCtx"].get("roles", []):
                return
        except CouchUnauthorized:
            pass
        if time.monotonic() > deadline:
            raise ConfigError(f"the bridge's CouchDB user {settings.bridge_user} does not "
                              "work after it was written; check CouchDB's authentication")
        time.sleep(0.2)
