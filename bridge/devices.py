"""Devices: enrolment, signed requests, revocation of a lost device.

A device enrols once with an Ed25519 public key (``POST /v1/devices``, itself signed with the
new key to prove the device holds it). Every later request carries four headers: the device
id, a Unix timestamp, a single-use nonce and a signature over the canonical request
(:func:`carecouch.signing.canonical_request`; docs/bridge.md gives the bytes). A timestamp
outside the allowed clock skew, or a nonce seen before (CouchDB decides, so every bridge
instance agrees), is refused.
"""

from __future__ import annotations

import re
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from flask import Blueprint, Response, jsonify, request

from carecouch.devices import Device, DeviceExists, DeviceStatus
from carecouch.ids import InvalidName, check_device_id
from carecouch.revocation import revoke_device
from carecouch.signing import (
    HEADER_DEVICE,
    HEADER_NONCE,
    HEADER_SIGNATURE,
    HEADER_TIMESTAMP,
    BadSignature,
    canonical_request,
    public_key_from_b64,
    verify_raw,
)

from . import inputs
from .auth import admit, identify, policy_and_grant, require_grant, require_user
from .errors import ApiError
from .failures import AuthFailure, check
from .idp import Identity
from .services import services

blueprint = Blueprint("devices", __name__)
NONCE = re.compile(r"^[A-Za-z0-9_-]{16,128}$")


def _headers() -> tuple[str, int, str, str]:
    values = [request.headers.get(h, "") for h in (HEADER_DEVICE, HEADER_TIMESTAMP,
                                                    HEADER_NONCE, HEADER_SIGNATURE)]
    if not all(values):
        raise AuthFailure(401, "device.signature_required", "this request must be signed by an "
                          f"enrolled device ({HEADER_DEVICE}, {HEADER_TIMESTAMP}, {HEADER_NONCE}, "
                          f"{HEADER_SIGNATURE})")
    device, stamp, nonce, signature = values
    try:
        check_device_id(device)
    except InvalidName as exc:
        raise AuthFailure(401, "device.bad_signature", str(exc)) from exc
    if not stamp.isdigit() or len(stamp) > 12:
        raise AuthFailure(401, "device.bad_signature", f"{HEADER_TIMESTAMP} must be Unix seconds")
    if not NONCE.fullmatch(nonce):
        raise AuthFailure(401, "device.bad_signature", f"{HEADER_NONCE} must be 16-128 "
                          "base64url characters")
    return device, int(stamp), nonce, signature


def _verify(public: Ed25519PublicKey, device: str, stamp: int, nonce: str,
            signature: str) -> None:
    skew = services().settings.clock_skew
    now = time.time()
    if abs(now - stamp) > skew:
        raise AuthFailure(401, "device.stale_timestamp", f"the request's timestamp is "
                          f"{int(now - stamp)} s off the bridge's clock (at most {skew} s "
                          "allowed); check the device clock", {"server_time": int(now)})
    message = canonical_request(request.method, request.path,
                                request.query_string.decode("latin-1"),
                                request.get_data(cache=True), device, stamp, nonce)
    try:
        verify_raw(public, signature, message)
    except BadSignature as exc:
        raise AuthFailure(401, "device.bad_signature", f"device signature refused ({exc})") from exc


def _claim_nonce(device: str, nonce: str, stamp: int) -> None:
    if not services().nonces.claim(device, nonce, stamp):
        raise AuthFailure(401, "device.replayed", "this nonce was used before: a replayed "
                          "request is refused; sign every request with a fresh nonce")


def active_device(device_id: str) -> Device:
    """The enrolled device as the registry holds it now; 401 unknown, 403 revoked."""
    return usable(device_id, services().devices.get(device_id))


def usable(device_id: str, device: Device | None) -> Device:
    """``device`` (as just read from the registry) if it is enrolled and active; 401
    unknown, 403 revoked."""
    if device is None:
        raise AuthFailure(401, "device.unknown", f"device {device_id} is not enrolled")
    if device.status != DeviceStatus.ACTIVE:
        raise AuthFailure(403, "device.revoked", f"device {device_id} was revoked; enrol it "
                          "again under a new id")
    return device


def require_device() -> Device:
    """The enrolled, active device that signed this request. An address that has failed
    too often is refused before the registry is read or any signature checked."""
    check()
    device_id, stamp, nonce, signature = _headers()
    device = active_device(device_id)
    _authenticate(device, stamp, nonce, signature)
    return device


def require_device_and_user() -> tuple[Device, Identity]:
    """The signing device and its clinician (bearer token), with one registry request for
    the device record and the user's revocation record instead of one each.

    The answers keep their order: a device error first (a revoked device hears
    device.revoked, and wipes itself, even when its clinician's token has expired), then
    the token's. The token is checked before the registry is read only to know whose
    revocation to read with the device; its error waits until the device has been checked.
    """
    check()
    device_id, stamp, nonce, signature = _headers()
    identity: Identity | None = None
    token_error: AuthFailure | None = None
    try:
        identity = identify()
    except AuthFailure as exc:
        token_error = exc
    found, revoked_at = services().devices.read(device_id,
                                                identity.user if identity else None)
    device = usable(device_id, found)
    _authenticate(device, stamp, nonce, signature)
    if token_error is not None or identity is None:
        raise token_error or AssertionError("no identity and no error")
    admit(identity, revoked_at)
    return device, identity


def _authenticate(device: Device, stamp: int, nonce: str, signature: str) -> None:
    """The request is signed by ``device``'s key, timely and not replayed."""
    try:
        public = public_key_from_b64(device.public_key)
    except ValueError as exc:  # a registry document damaged by hand
        raise AuthFailure(403, "device.revoked", f"device {device.id}'s enrolled key is "
                          "unusable; enrol it again under a new id") from exc
    _verify(public, device.id, stamp, nonce, signature)
    services().limiter.take(f"device:{device.id}")
    _claim_nonce(device.id, nonce, stamp)


@blueprint.post("/v1/devices")
def enrol() -> tuple[Response, int]:
    identity = require_user()
    require_grant(identity)
    data = inputs.body()
    inputs.only(data, "device", "public_key", "label")
    device_id = inputs.checked(inputs.required_text(data, "device", max_length=64),
                               check_device_id, "device")
    key_text = inputs.required_text(data, "public_key", max_length=100)
    public = inputs.checked(key_text, public_key_from_b64, "public_key")
    label = inputs.text(data, "label", required=False, max_length=100)
    header_device, stamp, nonce, signature = _headers()
    if header_device != device_id:
        raise ApiError(400, "device.mismatch", f"{HEADER_DEVICE} must be the device being "
                       "enrolled")
    _verify(public, device_id, stamp, nonce, signature)  # proof of possession of the key
    s = services()
    s.limiter.take(f"device:{device_id}")
    _claim_nonce(device_id, nonce, stamp)
    try:
        device = s.devices.enrol(device_id, key_text, identity.user, label)
    except DeviceExists as exc:
        raise ApiError(409, "device.exists", str(exc)) from exc
    s.audit(identity.user).record("device.enrol", device_id, {
        "label": label, "public_key": key_text})
    return jsonify({"device": device.as_json()}), 201


def _manageable(device_id: str) -> tuple[Any, Device]:
    identity = require_user()
    try:
        check_device_id(device_id)
    except InvalidName as exc:
        raise ApiError(404, "device.unknown", str(exc)) from exc
    device = services().devices.get(device_id)
    _, grant = policy_and_grant(identity)
    if device is None or (identity.user not in (device.enrolled_by, device.holder)
                          and not grant.admin):
        # The same answer for "unknown" and "not yours": ids of others' devices stay private.
        raise ApiError(404, "device.unknown", f"no device {device_id} of yours is enrolled")
    return identity, device


@blueprint.get("/v1/devices/<device_id>")
def show(device_id: str) -> Response:
    _, device = _manageable(device_id)
    return jsonify({"device": device.as_json()})


@blueprint.delete("/v1/devices/<device_id>")
def revoke(device_id: str) -> Response:
    """A lost or stolen device: it can sign nothing more, and every CouchDB user it holds is
    deleted at once (no device signature: the device is gone)."""
    identity, device = _manageable(device_id)
    revoked = revoke_device(services().admin, device.id, identity.user, device=device)
    assert revoked is not None and revoked.device is not None
    return jsonify({"device": revoked.device.as_json(), "deleted_credentials": revoked.deleted})
