"""The public keys that sign clinical revisions, as ``carecouch audit verify`` checks them.

Devices' keys are their enrolment records in ``carecouch_registry`` (``device:<id>``, whose
``public_key`` stays after a revocation, with ``revoked_at``: what a device signed before it
was revoked still verifies). The bridge publishes its own signing keys there at start
(``bridge-key:<key id>``): it signs the exclusive records it creates and leases.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .clock import utc_now
from .couch import CouchClient
from .devices import DeviceStatus
from .errors import CouchConflict
from .provenance import BRIDGE_SIGNER, SignerKey
from .registry import REGISTRY_DB
from .signing import b64url, key_id, public_key_from_b64, raw_public

_BRIDGE_PREFIX = "bridge-key:"
_DEVICE_PREFIX = "device:"


def publish_bridge_key(admin: CouchClient, public: Ed25519PublicKey) -> None:
    """Record the bridge's public signing key (once per key; never removed: what it signed
    stays verifiable after the key is rotated)."""
    kid = key_id(public)
    db = admin.db(REGISTRY_DB)
    if db.get_or_none(_BRIDGE_PREFIX + kid) is None:
        try:
            db.put({"_id": _BRIDGE_PREFIX + kid, "type": "bridge_key", "kid": kid,
                    "public_key": b64url(raw_public(public)), "published_at": utc_now()})
        except CouchConflict:
            pass  # another bridge instance published it first


def signer_keys(admin: CouchClient) -> dict[str, SignerKey]:
    """Every device's and the bridge's public key, by key id (one read per kind)."""
    db = admin.db(REGISTRY_DB)
    keys: dict[str, SignerKey] = {}
    for prefix in (_DEVICE_PREFIX, _BRIDGE_PREFIX):
        rows = db.all_docs(startkey=prefix, endkey=prefix + "\ufff0", include_docs=True)["rows"]
        for row in rows:
            doc = row.get("doc") or {}
            try:
                public = public_key_from_b64(str(doc.get("public_key")))
            except ValueError:
                continue  # a damaged record proves nothing
            signer = BRIDGE_SIGNER if prefix == _BRIDGE_PREFIX else str(doc.get("id"))
            revoked = doc.get("revoked_at") if doc.get("status") == DeviceStatus.REVOKED else None
            keys[key_id(public)] = SignerKey(signer, public, revoked)
    return keys
