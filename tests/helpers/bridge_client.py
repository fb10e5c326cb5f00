"""A device and an identity provider as the bridge's tests play them, over real HTTP.

The identity provider is a key pair the tests own: they mint JWTs with the private key, and
the bridge under test is configured with the public key, exactly as it would be with the
organisation's IdP. A :class:`DeviceClient` holds an Ed25519 key and signs every request the
way docs/bridge.md tells device implementers to.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import jwt
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carecouch.signing import b64url, raw_public, request_headers

ISSUER = "https://idp.test.carecouch"
AUDIENCE = "carecouch-bridge-tests"


@dataclass
class Idp:
    key: Ed25519PrivateKey
    kid: str = "test-idp-1"

    def token(self, user: str, groups: list[str] | None = None, *, lifetime: int = 600,
              issued: float | None = None, **claims: Any) -> str:
        now = int(time.time() if issued is None else issued)
        payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": user, "groups": groups or [],
                   "iat": now, "exp": now + lifetime, **claims}
        return jwt.encode(payload, self.key, algorithm="EdDSA", headers={"kid": self.kid})


@dataclass
class DeviceClient:
    """One device of one user, talking to a bridge."""

    base_url: str
    token: str
    device_id: str = field(default_factory=lambda: f"dev-{uuid.uuid4().hex[:12]}")
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    @property
    def user(self) -> str:
        """The identity provider's user this device's token names."""
        return str(jwt.decode(self.token, options={"verify_signature": False})["sub"])

    @property
    def public_key(self) -> str:
        return b64url(raw_public(self.key.public_key()))

    def call(self, method: str, path: str, body: Any = None, *, signed: bool = True,
             token: str | Literal[False] | None = None,
             headers: dict[str, str] | None = None,
             raw: bytes | None = None, signer: Ed25519PrivateKey | None = None,
             timestamp: int | None = None, nonce: str | None = None) -> httpx.Response:
        content = raw if raw is not None else (
            b"" if body is None else json.dumps(body).encode())
        sent = {"Content-Type": "application/json"}
        if token is not False:
            sent["Authorization"] = f"Bearer {token or self.token}"
        if signed:
            sent.update(request_headers(signer or self.key, self.device_id, method, path,
                                        content, timestamp=timestamp, nonce=nonce))
        sent.update(headers or {})
        return httpx.request(method, self.base_url + path, content=content, headers=sent,
                             timeout=60)

    def enrol(self, label: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"device": self.device_id, "public_key": self.public_key}
        if label:
            body["label"] = label
        response = self.call("POST", "/v1/devices", body)
        assert response.status_code == 201, response.text
        assert_documented(self.base_url, "/v1/devices", response)
        return dict(response.json())

    def credentials(self, expect: int = 201) -> dict[str, Any]:
        response = self.call("POST", "/v1/credentials", {})
        assert response.status_code == expect, response.text
        assert_documented(self.base_url, "/v1/credentials", response)
        return dict(response.json())


def nonce() -> str:
    return secrets.token_urlsafe(18)


@functools.cache
def _api(base_url: str) -> Any:
    return schemathesis.openapi.from_url(base_url + "/openapi.json")


def assert_documented(base_url: str, path: str, response: httpx.Response) -> None:
    """The answer is one /openapi.json describes for ``path`` (a template such as
    ``/v1/devices/{device_id}``): its status, and its body against that status's schema."""
    _api(base_url)[path][response.request.method].validate_response(response)
