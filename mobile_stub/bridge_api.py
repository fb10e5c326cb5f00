"""The device's one way to the bridge: JSON requests over HTTP(S), signed by the device key.

Every request except ``GET /v1/keys`` carries the clinician's identity token as a bearer
token; device requests are also signed with the device's Ed25519 key (docs/bridge.md,
"Signing a request"; :func:`carecouch.signing.request_headers` builds the headers). The
bridge's one error shape becomes a named error: ``device.revoked`` is :class:`DeviceRevoked`
(the device must wipe itself), no answer is :class:`BridgeUnreachable`, anything else is a
:class:`BridgeError` with the bridge's code and one-line message.

Signed requests carry a Unix timestamp the bridge checks against its own clock (300 s by
default). The device stamps it with its estimate of the server clock, and when the bridge
still answers ``device.stale_timestamp`` it retries once with the bridge's own time: a
tablet whose clock drifted can still log in.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from carecouch.signing import request_headers

from .errors import BridgeError, BridgeUnreachable, DeviceOffline, DeviceRevoked, NotLoggedIn

STALE_TIMESTAMP = "device.stale_timestamp"
REVOKED = "device.revoked"


@dataclass(frozen=True)
class Answer:
    """A successful answer, with when it was asked and answered (device Unix seconds): the
    bounds of the clock-offset estimate from ``server_time``."""

    status: int
    body: dict[str, Any]
    sent: float
    received: float


class BridgeClient:
    def __init__(self, base_url: str, device_id: str, key: Ed25519PrivateKey, *,
                 token: str | None = None,
                 network_allowed: Callable[[], bool] = lambda: True,
                 clock_offset_ms: Callable[[], int | None] = lambda: None,
                 timeout: float = 30.0, now: Callable[[], float] = time.time) -> None:
        self.base_url = base_url.rstrip("/")
        self.device_id = device_id
        self.token = token
        self._key = key
        self._network_allowed = network_allowed
        self._offset_ms = clock_offset_ms
        self._now = now
        self._http = httpx.Client(timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self._http.close()

    # -- the requests a device makes --------------------------------------------------------

    def keys(self) -> dict[str, Any]:
        """The bridge's public signing keys (a JWK set); no identity needed."""
        return self._send("GET", "/v1/keys", None, signed=False, bearer=False).body

    def device(self) -> dict[str, Any]:
        """This device as the bridge knows it (bearer only)."""
        path = f"/v1/devices/{quote(self.device_id, safe='')}"
        return self._send("GET", path, None, signed=False, bearer=True).body

    def post(self, path: str, body: dict[str, Any]) -> Answer:
        """A signed ``POST`` with the identity token."""
        return self._send("POST", path, body, signed=True, bearer=True)

    # -- the one way out --------------------------------------------------------------------

    def _send(self, method: str, path: str, body: dict[str, Any] | None, *, signed: bool,
              bearer: bool) -> Answer:
        if not self._network_allowed():
            raise DeviceOffline("the device is offline (run `carecouch-device online`)")
        content = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if bearer:
            if not self.token:
                raise NotLoggedIn("no identity-provider token: give --token or set "
                                  "CARECOUCH_DEVICE_IDP_TOKEN")
            headers["Authorization"] = f"Bearer {self.token}"
        skew = (self._offset_ms() or 0) / 1000
        retried = False
        while True:
            if signed:  # a fresh nonce and timestamp for every attempt
                headers.update(request_headers(self._key, self.device_id, method, path,
                                               content, timestamp=int(self._now() + skew)))
            sent = self._now()
            try:
                response = self._http.request(method, self.base_url + path, content=content,
                                              headers=headers)
            except httpx.HTTPError as exc:
                raise BridgeUnreachable(f"cannot reach the bridge at {self.base_url}: "
                                        f"{exc or type(exc).__name__}") from exc
            received = self._now()
            if response.is_success:
                return Answer(response.status_code, _object(response), sent, received)
            error = _error(response)
            server_time = _server_time(response)
            if not retried and signed and error.code == STALE_TIMESTAMP and server_time:
                skew, retried = server_time - received, True  # the bridge's clock, to 1 s
                continue
            raise error


def _object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise BridgeError(f"the bridge answered {response.status_code} without a JSON object",
                          status=response.status_code)
    return body


def _fields(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error(response: httpx.Response) -> BridgeError:
    body = _fields(response)
    code = str(body.get("error") or "")
    message = str(body.get("message") or response.reason_phrase or "no reason given")
    text = f"the bridge refused ({response.status_code}{' ' + code if code else ''}): {message}"
    kind = DeviceRevoked if code == REVOKED else BridgeError
    return kind(text, status=response.status_code, code=code)


def _server_time(response: httpx.Response) -> float | None:
    details = _fields(response).get("details")
    value = details.get("server_time") if isinstance(details, dict) else None
    return float(value) if isinstance(value, int | float) else None
