"""Ed25519 signatures: the bridge's signed policy snapshots and lease tokens, device requests.

Snapshots and lease tokens are JWS compact serialisations (RFC 7515) with ``alg: EdDSA``
(RFC 8037), so any JOSE library on a device verifies them; docs/bridge.md gives the bytes.
The bridge publishes its public key as a JWK set (``GET /v1/keys``); ``kid`` is the first 16
hex digits of the sha256 of the raw public key, so a key rotation is visible in every token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .errors import CarecouchError, ConfigError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64


class BadSignature(CarecouchError):
    """A token or signature that does not verify (tampered, truncated, or another key's)."""


class OtherKey(BadSignature):
    """A well-formed token whose ``kid`` names another key: a holder of several keys tries
    the next one, and says so only if none signed it."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict unpadded base64url (what JWS uses); raises ValueError on anything else."""
    if not isinstance(text, str) or not text.isascii() or "=" in text:
        raise ValueError("not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(public)).hexdigest()[:16]


def raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_from_b64(text: str) -> Ed25519PublicKey:
    """A device's public key as it enrols it: 32 raw bytes, base64url."""
    raw = b64url_decode(text)
    if len(raw) != PUBLIC_KEY_BYTES:
        raise ValueError(f"an Ed25519 public key is {PUBLIC_KEY_BYTES} bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_raw(public: Ed25519PublicKey, signature_b64: str, message: bytes) -> None:
    """Raise :class:`BadSignature` unless ``signature_b64`` signs ``message``."""
    try:
        signature = b64url_decode(signature_b64)
    except ValueError as exc:
        raise BadSignature(f"signature {exc}") from exc
    if len(signature) != SIGNATURE_BYTES:
        raise BadSignature("an Ed25519 signature is 64 bytes")
    try:
        public.verify(signature, message)
    except InvalidSignature as exc:
        raise BadSignature("the signature does not verify") from exc


@dataclass(frozen=True)
class Signer:
    """The bridge's signing key."""

    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def kid(self) -> str:
        return key_id(self.public)

    def jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw_public(self.public)),
                "kid": self.kid, "alg": "EdDSA", "use": "sig"}

    def sign(self, payload: dict[str, Any], typ: str) -> str:
        """``base64url(header).base64url(payload).base64url(signature)``."""
        header = {"alg": "EdDSA", "typ": typ, "kid": self.kid}
        signing_input = f"{_segment(header)}.{_segment(payload)}".encode("ascii")
        return f"{signing_input.decode()}.{b64url(self.private.sign(signing_input))}"


def _segment(value: dict[str, Any]) -> str:
    return b64url(json.dumps(value, separators=(",", ":"), sort_keys=True).encode())


def verify_token(token: str, public: Ed25519PublicKey, typ: str) -> dict[str, Any]:
    """The payload of a token this key signed, of type ``typ``; :class:`BadSignature` else."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise BadSignature("not a JWS compact token (three dot-separated parts)")
    try:
        header = json.loads(b64url_decode(parts[0]))
        payload = json.loads(b64url_decode(parts[1]))
    except ValueError as exc:
        raise BadSignature(f"malformed token ({exc})") from exc
    if not isinstance(header, dict) or header.get("alg") != "EdDSA" or header.get("typ") != typ:
        raise BadSignature(f"not an EdDSA {typ} token")
    if header.get("kid") != key_id(public):
        raise OtherKey("signed with another key")
    verify_raw(public, parts[2], f"{parts[0]}.{parts[1]}".encode("ascii"))
    if not isinstance(payload, dict):
        raise BadSignature("the payload is not an object")
    return payload


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(data: bytes, source: str) -> Ed25519PrivateKey:
    """A PKCS#8 PEM Ed25519 private key, or a base64url 32-byte seed (for an env variable)."""
    text = data.strip()
    try:
        if text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(text, password=None)
        else:
            seed = b64url_decode(text.decode("ascii").rstrip("="))
            if len(seed) != 32:
                raise ValueError("a raw Ed25519 seed is 32 bytes")
            key = Ed25519PrivateKey.from_private_bytes(seed)
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: not an Ed25519 private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{source}: the signing key must be Ed25519, not "
                          f"{type(key).__name__}")
    return key


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write a PEM private key readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(private_key_pem(key))


# -- device request signatures (docs/bridge.md, "Signing a request") ------------------------

REQUEST_SIGNATURE_VERSION = "carecouch-request-v1"
HEADER_DEVICE = "X-Carecouch-Device"
HEADER_TIMESTAMP = "X-Carecouch-Timestamp"
HEADER_NONCE = "X-Carecouch-Nonce"
HEADER_SIGNATURE = "X-Carecouch-Signature"


def canonical_request(method: str, path: str, query: str, body: bytes, device: str,
                      timestamp: int, nonce: str) -> bytes:
    """The bytes a device signs: eight lines joined by ``\\n``, no trailing newline."""
    return "\n".join([REQUEST_SIGNATURE_VERSION, method.upper(), path, query,
                      hashlib.sha256(body).hexdigest(), device, str(timestamp),
                      nonce]).encode("utf-8")


def request_headers(private: Ed25519PrivateKey, device: str, method: str, path: str,
                    body: bytes = b"", *, query: str = "", timestamp: int | None = None,
                    nonce: str | None = None) -> dict[str, str]:
    """The four headers of a signed request (what a device sends; tests and benchmarks too)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = nonce or secrets.token_urlsafe(18)
    message = canonical_request(method, path, query, body, device, timestamp, nonce)
    return {HEADER_DEVICE: device, HEADER_TIMESTAMP: str(timestamp), HEADER_NONCE: nonce,
            HEADER_SIGNATURE: b64url(private.sign(message))}
