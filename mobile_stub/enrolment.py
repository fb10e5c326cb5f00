"""Enrolment: the device's Ed25519 key, registered with the bridge; the bridge's keys, pinned.

The private key is made on the device and never leaves it; it is sealed in the store like
every other secret. Enrolling sends the public key signed with the new private key (proof
that the device holds it) and the clinician's identity token (who enrolled it), and pins the
bridge's public signing keys (:mod:`mobile_stub.trust`). Running ``enrol`` again after its
answer was lost is recognised (the bridge already holds this key) rather than refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from carecouch import provenance
from carecouch.clock import utc_now
from carecouch.signing import b64url, b64url_decode, raw_public

from .bridge_api import BridgeClient
from .errors import AlreadyEnrolled, BridgeError, NotEnrolled
from .store.device import DeviceStore
from .trust import PinnedKeys

DEVICE_KEY = "device_key"        # sealed: base64url of the 32-byte Ed25519 seed
BRIDGE_KEYS = "bridge_keys"      # sealed: the pinned JWK set
IDP_TOKEN = "idp_token"          # sealed: the last identity token given, for renewals
BRIDGE_URL = "bridge_url"        # in the clear: where the bridge is (no patient data)
DEVICE_EXISTS = "device.exists"


@dataclass(frozen=True)
class Enrolment:
    bridge_url: str
    device_id: str
    key: Ed25519PrivateKey
    keys: PinnedKeys

    @property
    def public_key(self) -> str:
        return b64url(raw_public(self.key.public_key()))

    def sign_record(self, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The revision with this device's signature (carecouch/provenance.py)."""
        return provenance.sign(doc, self.key, self.device_id)

    def client(self, store: DeviceStore, token: str | None, clock_offset_ms: int | None
               ) -> BridgeClient:
        """A bridge client signing as this device, silent while the store is offline, and
        stamping requests with the device's estimate of the server clock."""
        return BridgeClient(self.bridge_url, self.device_id, self.key, token=token,
                            network_allowed=store.network_allowed,
                            clock_offset_ms=lambda: clock_offset_ms)


def load(store: DeviceStore) -> Enrolment:
    """This store's enrolment; :class:`NotEnrolled` before ``carecouch-device enrol``."""
    url = store.get_meta(BRIDGE_URL)
    secrets = store.secrets
    seed, pinned = secrets.get(DEVICE_KEY), secrets.get(BRIDGE_KEYS)
    if url is None or seed is None or pinned is None:
        raise NotEnrolled("this device is not enrolled with a bridge (run `carecouch-device "
                          "enrol --bridge URL`)")
    return Enrolment(url, store.device_id, _key(seed), PinnedKeys.from_json(pinned))


def enrol(store: DeviceStore, bridge_url: str, token: str, label: str | None = None
          ) -> dict[str, Any]:
    """Register this device with the bridge as the clinician of ``token``."""
    enrolled = store.get_meta(BRIDGE_URL)
    if enrolled is not None:
        raise AlreadyEnrolled(f"this device ({store.device_id}) is already enrolled with "
                              f"{enrolled}; to enrol it elsewhere, wipe it and start again")
    seed = store.secrets.get(DEVICE_KEY)
    if seed is None:  # kept before asking, so a retry after a lost answer uses the same key
        seed = b64url(Ed25519PrivateKey.generate().private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()))
        store.secrets.put(DEVICE_KEY, seed)
    key = _key(seed)
    client = BridgeClient(bridge_url, store.device_id, key, token=token,
                          network_allowed=store.network_allowed)
    try:
        pinned = PinnedKeys.from_jwks(client.keys())
        public = b64url(raw_public(key.public_key()))
        body: dict[str, Any] = {"device": store.device_id, "public_key": public}
        if label:
            body["label"] = label
        try:
            client.post("/v1/devices", body)
        except BridgeError as exc:
            if exc.code != DEVICE_EXISTS or _enrolled_key(client) != public:
                raise
    finally:
        client.close()
    store.secrets.put_many({BRIDGE_KEYS: pinned.to_json(), IDP_TOKEN: token})
    store.set_meta("enrolled_at", utc_now())
    store.set_meta(BRIDGE_URL, bridge_url.rstrip("/"))  # last: the mark of a finished enrolment
    return {"device_id": store.device_id, "bridge": bridge_url.rstrip("/"),
            "bridge_keys": pinned.kids, "label": label}


def _enrolled_key(client: BridgeClient) -> object:
    """The public key the bridge holds for this device id (enrolled by whom we asked)."""
    device = client.device().get("device")
    return device.get("public_key") if isinstance(device, dict) else None


def _key(seed: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(b64url_decode(seed))
