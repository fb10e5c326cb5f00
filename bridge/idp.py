"""Callers' identity: bearer JWTs from the organisation's identity provider.

Verified with PyJWT against public keys IT configures (a PEM bundle or a JWKS file). Why a
library: JWT verification is where hand-written code goes wrong (``alg: none``, an RSA public
key accepted as an HMAC secret, a forgotten ``exp``/``aud``/``iss`` check); PyJWT is the
most used and maintained Python implementation, uses ``cryptography`` (already ours) for RS,
ES and EdDSA, and we pin the algorithms each key may use, so a token cannot choose its own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from carecouch.errors import CarecouchError, ConfigError

LEEWAY_SECONDS = 30


class BadToken(CarecouchError):
    """The bearer token is missing, malformed, expired, or not signed by the IdP."""


@dataclass(frozen=True)
class IdpKey:
    key: Any  # a cryptography public key object
    algorithms: tuple[str, ...]
    kid: str | None = None


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...]
    issued_at: int
    claims: dict[str, Any]


def _algorithms(key: Any) -> tuple[str, ...]:
    if isinstance(key, rsa.RSAPublicKey):
        return ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"secp256r1": ("ES256",), "secp384r1": ("ES384",),
                "secp521r1": ("ES512",)}.get(key.curve.name, ())
    if isinstance(key, ed25519.Ed25519PublicKey):
        return ("EdDSA",)
    return ()


def load_idp_keys(path: Path) -> tuple[IdpKey, ...]:
    """Public keys from a PEM bundle (one or more ``PUBLIC KEY`` blocks) or a JWKS file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"CARECOUCH_BRIDGE_IDP_KEYS_FILE: cannot read {path} "
                          f"({exc.strerror})") from exc
    keys: list[IdpKey] = []
    try:
        if text.lstrip().startswith("{"):
            for jwk in jwt.PyJWKSet.from_dict(json.loads(text)).keys:
                key = jwk.key
                if _algorithms(key):
                    keys.append(IdpKey(key, _algorithms(key), jwk.key_id))
        else:
            marker = "-----END PUBLIC KEY-----"
            for block in text.split(marker)[:-1]:
                key = serialization.load_pem_public_key((block + marker).strip().encode())
                if _algorithms(key):
                    keys.append(IdpKey(key, _algorithms(key)))
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise ConfigError(f"CARECOUCH_BRIDGE_IDP_KEYS_FILE: {path} is not a PEM bundle or "
                          f"JWKS of public keys ({exc})") from exc
    if not keys:
        raise ConfigError(f"CARECOUCH_BRIDGE_IDP_KEYS_FILE: {path} holds no RSA, EC or "
                          "Ed25519 public key")
    return tuple(keys)


class IdentityVerifier:
    def __init__(self, keys: Sequence[IdpKey], issuer: str, audience: str, user_claim: str,
                 groups_claim: str) -> None:
        self.keys = tuple(keys)
        self.issuer = issuer
        self.audience = audience
        self.user_claim = user_claim
        self.groups_claim = groups_claim

    def verify(self, token: str) -> Identity:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise BadToken(f"malformed bearer token ({exc})") from exc
        alg, kid = header.get("alg"), header.get("kid")
        candidates = [k for k in self.keys if alg in k.algorithms
                      and (kid is None or k.kid is None or k.kid == kid)]
        if not candidates:
            raise BadToken(f"no configured identity-provider key verifies {alg!r} tokens"
                           + (f" with kid {kid!r}" if kid else ""))
        error: Exception | None = None
        for candidate in candidates:
            try:
                claims = jwt.decode(token, candidate.key, algorithms=[str(alg)],
                                    audience=self.audience, issuer=self.issuer,
                                    leeway=LEEWAY_SECONDS,
                                    options={"require": ["exp", "iat", "iss", "aud"]})
            except jwt.InvalidSignatureError as exc:
                error = exc
                continue
            except jwt.PyJWTError as exc:
                raise BadToken(f"bearer token refused ({exc})") from exc
            return self._identity(claims)
        raise BadToken(f"bearer token refused ({error})")

    def _identity(self, claims: dict[str, Any]) -> Identity:
        user = claims.get(self.user_claim)
        if not isinstance(user, str) or not user:
            raise BadToken(f"the token has no {self.user_claim!r} claim naming the user")
        groups = claims.get(self.groups_claim) or []
        if isinstance(groups, str):
            groups = [groups]
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise BadToken(f"the token's {self.groups_claim!r} claim must list group names")
        iat = claims.get("iat")
        if not isinstance(iat, int):
            raise BadToken("the token's iat must be a whole number of seconds")
        return Identity(user, tuple(groups), iat, claims)
