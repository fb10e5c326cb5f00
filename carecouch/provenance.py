"""Provenance: which device (or the bridge) wrote a revision, provably.

A device signs every clinical revision it writes with its enrolled Ed25519 key; the bridge
signs the exclusive records it writes with its own. The signature travels in the record, in
the registry's ``signature_field`` (``signature``):

    {"signer": "<device id>" | "bridge", "key": "<key id>", "alg": "Ed25519", "sig": "<b64url>"}

What is signed (docs/record-rules.md, "Provenance"; test vectors in
``tests/vectors/record_signatures.json``, used by every implementation): the UTF-8 bytes of

    "carecouch-record-v1\\n" + JCS(content)

where JCS is the JSON Canonicalization Scheme (RFC 8785: keys sorted by UTF-16 code units, no
whitespace, strings with only the required escapes, numbers as ECMAScript prints them) and
``content`` is the revision as stored, minus CouchDB's metadata (``_rev``, ``_revisions``,
``_conflicts``, ``_deleted_conflicts``, ``_revs_info``, ``_local_seq``) and the signature
itself, with ``_id`` kept, ``_deleted`` kept when true, and each attachment reduced to
``{"content_type", "digest"}`` (CouchDB's ``md5-<base64>`` of its data), so a photo is covered
without its bytes.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from json.encoder import encode_basestring
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .clock import parse_utc
from .signing import BadSignature, b64url, key_id, verify_raw

DOMAIN = b"carecouch-record-v1\n"
SIGNATURE_FIELD = "signature"
BRIDGE_SIGNER = "bridge"
ALGORITHM = "Ed25519"
_METADATA = frozenset({"_rev", "_revisions", "_conflicts", "_deleted_conflicts", "_revs_info",
                       "_local_seq", "_attachments", "_deleted"})


# -- the canonical form -------------------------------------------------------------------------

def jcs(value: Any) -> str:
    """RFC 8785 canonical JSON of ``value``."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(jcs(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{_string(k)}:{jcs(value[k])}" for k in _keys(value)) + "}"
    raise TypeError(f"not JSON: {type(value).__name__}")


# json's own string escaper (the C one where built): "\"", "\\", the short escapes and
# \u00xx for other control characters, everything else as is: what RFC 8785 asks.
_string = encode_basestring


def _keys(value: Mapping[str, Any]) -> list[str]:
    """Sorted by UTF-16 code units; code points order them the same unless a key holds a
    character beyond U+FFFF, which sorts below U+E000-U+FFFF in UTF-16."""
    keys = [str(k) for k in value]
    if all(ch < "\ud800" for k in keys for ch in k):
        return sorted(keys)
    return sorted(keys, key=lambda k: k.encode("utf-16-be"))


def _number(x: float) -> str:
    """ECMAScript Number::toString: shortest round-trip digits, positional from 1e-7 to
    1e21, exponent form (``1e+21``, ``1.5e-7``) outside; integral values without ``.0``."""
    if math.isnan(x) or math.isinf(x):
        raise ValueError("NaN and Infinity are not JSON")
    if x == 0:
        return "0"
    digits, exponent = _shortest(abs(x))
    sign = "-" if x < 0 else ""
    n = exponent + len(digits)  # the decimal point sits after n digits
    if len(digits) <= n <= 21:
        return sign + digits + "0" * (n - len(digits))
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{mantissa}e{'+' if n - 1 >= 0 else '-'}{abs(n - 1)}"


def _shortest(x: float) -> tuple[str, int]:
    """(digits, exponent) with x == int(digits) * 10**exponent, digits shortest (repr's)."""
    text = repr(x)
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0") or "0"
    exponent = int(exp or 0) - len(frac)
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    return stripped or "0", exponent


def content(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What a signature covers (module docstring)."""
    out: dict[str, Any] = {k: v for k, v in doc.items()
                           if k not in _METADATA and k != SIGNATURE_FIELD}
    if doc.get("_deleted") is True:
        out["_deleted"] = True
    attachments = doc.get("_attachments")
    if isinstance(attachments, Mapping) and attachments:
        out["_attachments"] = {name: {"content_type": att.get("content_type"),
                                      "digest": attachment_digest(att)}
                               for name, att in attachments.items()
                               if isinstance(att, Mapping)}
    return out


def attachment_digest(att: Mapping[str, Any]) -> str | None:
    """CouchDB's digest of an attachment: its stub's ``digest``, or ``md5-<base64>`` of the
    inline data a device is about to push."""
    data = att.get("data")
    if isinstance(data, str):
        md5 = hashlib.md5(base64.b64decode(data)).digest()  # noqa: S324 - CouchDB's digest
        return "md5-" + base64.b64encode(md5).decode()
    digest = att.get("digest")
    return str(digest) if digest is not None else None


def signing_input(doc: Mapping[str, Any]) -> bytes:
    return DOMAIN + jcs(content(doc)).encode("utf-8")


# -- signing and checking ---------------------------------------------------------------------

def sign(doc: Mapping[str, Any], private: Ed25519PrivateKey, signer: str) -> dict[str, Any]:
    """``doc`` with its signature (replacing any it had)."""
    signature = private.sign(signing_input(doc))
    return {**doc, SIGNATURE_FIELD: {"signer": signer, "key": key_id(private.public_key()),
                                     "alg": ALGORITHM, "sig": b64url(signature)}}


class Provenance(StrEnum):
    VERIFIED = "verified"            # signed by the device the record names (or the bridge)
    UNSIGNED = "unsigned"            # no signature: written by other means than a device
    UNKNOWN_KEY = "unknown_key"      # signed by a key no enrolled device or bridge holds
    BAD_SIGNATURE = "bad_signature"  # the content is not what was signed, or the record
                                     # names another device than the signer


@dataclass(frozen=True)
class SignerKey:
    signer: str                      # a device id, or "bridge"
    public: Ed25519PublicKey
    revoked_at: str | None = None    # a device's revocation: what it signed before still counts


@dataclass(frozen=True)
class Verdict:
    provenance: Provenance
    signer: str | None = None
    reason: str = ""

    @property
    def verified(self) -> bool:
        return self.provenance is Provenance.VERIFIED


def verify(doc: Mapping[str, Any], keys: Mapping[str, SignerKey]) -> Verdict:
    """Who provably wrote this revision; ``keys`` by key id."""
    signature = doc.get(SIGNATURE_FIELD)
    if not isinstance(signature, Mapping):
        return Verdict(Provenance.UNSIGNED, reason="no signature")
    key = keys.get(str(signature.get("key")))
    if key is None or key.signer != signature.get("signer"):
        return Verdict(Provenance.UNKNOWN_KEY, str(signature.get("signer")),
                       f"key {signature.get('key')} is not an enrolled device's or the bridge's")
    try:
        verify_raw(key.public, str(signature.get("sig")), signing_input(doc))
    except BadSignature:
        return Verdict(Provenance.BAD_SIGNATURE, key.signer,
                       "the record is not what its signer signed (changed after signing)")
    if key.signer != BRIDGE_SIGNER and doc.get("device") != key.signer:
        return Verdict(Provenance.BAD_SIGNATURE, key.signer,
                       f"signed by device {key.signer}, but the record names {doc.get('device')}")
    if key.revoked_at is not None and _after(doc.get("at"), key.revoked_at):
        return Verdict(Provenance.BAD_SIGNATURE, key.signer,
                       f"device {key.signer} was revoked at {key.revoked_at}, before this "
                       f"record's time {doc.get('at')}")
    return Verdict(Provenance.VERIFIED, key.signer)


def _after(at: Any, revoked_at: str) -> bool:
    try:
        return parse_utc(str(at)) > parse_utc(revoked_at)
    except ValueError:
        return True  # a record with no readable time cannot show it predates the revocation
