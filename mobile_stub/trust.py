"""The bridge's signing keys as the device pinned them at enrolment, and offline checks of what
the bridge signs (policy snapshots, lease tokens).

The keys are fetched once, from ``GET /v1/keys`` while enrolling (trust on first use, at the
moment IT hands the device to its clinician), and kept sealed in the store. From then on a
snapshot or lease token counts only if it verifies against them, with the token type
expected (a lease token is not a snapshot): a token from another bridge, or one edited on the
device, is refused even with no network. A bridge that rotates its key needs its devices
enrolled again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from carecouch.signing import (
    BadSignature,
    OtherKey,
    b64url,
    key_id,
    public_key_from_b64,
    raw_public,
)
from carecouch.signing import verify_token as verify_with
from carecouch.snapshot import LEASE_TYPE, SNAPSHOT_TYPE

from .errors import TokenRefused

__all__ = ["LEASE_TYPE", "SNAPSHOT_TYPE", "PinnedKeys"]

@dataclass(frozen=True)
class PinnedKeys:
    keys: tuple[Ed25519PublicKey, ...]

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any]) -> PinnedKeys:
        """The Ed25519 keys of a JWK set whose ``kid`` is the bridge's key id of ``x``."""
        entries = jwks.get("keys")
        if not isinstance(entries, list):
            raise TokenRefused("the bridge's /v1/keys answer is not a JWK set")
        keys = []
        for jwk in entries:
            if not isinstance(jwk, dict) or (jwk.get("kty"), jwk.get("crv")) != ("OKP",
                                                                                 "Ed25519"):
                continue  # not a key this device can use; others may follow
            try:
                key = public_key_from_b64(str(jwk.get("x")))
            except ValueError as exc:
                raise TokenRefused(f"the bridge published a malformed key ({exc})") from exc
            if jwk.get("kid") != key_id(key):
                raise TokenRefused("the bridge published a key whose kid does not match it")
            keys.append(key)
        if not keys:
            raise TokenRefused("the bridge published no Ed25519 signing key")
        return cls(tuple(keys))

    def to_json(self) -> str:
        return json.dumps({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": key_id(k),
                                     "x": b64url(raw_public(k))} for k in self.keys]})

    @classmethod
    def from_json(cls, text: str) -> PinnedKeys:
        return cls.from_jwks(json.loads(text))

    @property
    def kids(self) -> list[str]:
        return [key_id(k) for k in self.keys]

    def verify(self, token: str, typ: str, what: str) -> dict[str, Any]:
        """The payload of ``token`` if a pinned key signed it as ``typ``; else
        :class:`TokenRefused` naming ``what`` (e.g. "the policy snapshot")."""
        problem = "signed by a key this device did not pin when it enrolled"
        for key in self.keys:
            try:
                return verify_with(token, key, typ)
            except OtherKey:
                continue
            except BadSignature as exc:
                problem = str(exc)
        raise TokenRefused(f"{what} does not verify: {problem}")
