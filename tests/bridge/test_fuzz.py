"""A schema-driven fuzz of the bridge API: schemathesis reads /openapi.json from the running
bridge and generates requests for every operation, valid ones and invalid ones (wrong types,
missing fields, patterns broken); each is sent twice, as generated (no identity, no
signature) and as an enrolled device signs it, so the fuzz reaches the handlers behind
authentication. No answer may be a 5xx, every error has the one error shape, and every answer
is one the document describes: its status, and its body against the status's schema (what a
device implementer codes against)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from carecouch.signing import request_headers
from tests.helpers.bridge_client import DeviceClient
from tests.helpers.bridges import BridgeServer, World


@pytest.fixture(scope="module")
def fuzz_device(bridge: BridgeServer, world: World) -> DeviceClient:
    return bridge.enrolled_device(world.user("fuzzer"), [
        world.group("nurses"), world.group("prescribers"), world.group("senior")])


def operations(bridge: BridgeServer) -> list[Any]:
    loaded = schemathesis.openapi.from_url(bridge.url + "/openapi.json")
    return [result.ok() for result in loaded.get_all_operations()]


def _send(base: str, case: Any, headers: dict[str, str],
          body: bytes) -> httpx.Response | None:
    query = urlencode(case.query or {}, doseq=True)
    url = base + case.formatted_path + (f"?{query}" if query else "")
    # As bytes: invalid cases carry non-ASCII header values, which a client can still send.
    generated = {str(k): str(v).encode() for k, v in (case.headers or {}).items()}
    try:
        return httpx.request(case.method, url, content=body, timeout=60, headers={
            **generated, "Content-Type": "application/json", **headers})
    except httpx.LocalProtocolError:
        return None  # a header value no HTTP client can send (e.g. "Bearer "): not a request


# Headers too: a 429 must carry the Retry-After its answer in the document requires.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]


def _check(case: Any, response: httpx.Response | None) -> None:
    if response is None:
        return
    assert response.status_code < 500, (case.method, case.formatted_path, case.body,
                                         response.status_code, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "message", "details"}, body
    case.validate_response(response, checks=CHECKS)


def _body(case: Any) -> bytes:
    if case.body is None or not isinstance(case.body, (dict, list, str, int, float, bool)):
        return b""
    return json.dumps(case.body).encode()


def test_no_request_makes_the_bridge_fail(bridge: BridgeServer,
                                          fuzz_device: DeviceClient) -> None:
    # schemathesis's own pytest plugin does not support this pytest yet: drive its
    # strategies with Hypothesis directly, one operation at a time.
    found = operations(bridge)
    routes = {(method, rule.rule.replace("<", "{").replace(">", "}"))
              for rule in bridge.app.url_map.iter_rules()
              for method in rule.methods or () if method not in ("HEAD", "OPTIONS")}
    paths = httpx.get(bridge.url + "/openapi.json").json()["paths"]
    documented = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    # Every route is described (a device implementer finds all of it in the document) ...
    assert routes - {("GET", "/static/{path:filename}")} == documented
    # ... and fuzzed (schemathesis leaves out the document's own path).
    assert {(op.method.upper(), op.path) for op in found} == documented - {
        ("GET", "/openapi.json")}

    for operation in found:
        @given(case=operation.as_strategy(GenerationMode.POSITIVE)
               | operation.as_strategy(GenerationMode.NEGATIVE))
        @settings(max_examples=20, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case: Any) -> None:
            body = _body(case)
            _check(case, _send(bridge.url, case, {}, body))
            query = urlencode(case.query or {}, doseq=True)
            signed = request_headers(fuzz_device.key, fuzz_device.device_id, case.method,
                                     case.formatted_path, body, query=query)
            _check(case, _send(bridge.url, case, {
                "Authorization": f"Bearer {fuzz_device.token}", **signed}, body))

        fuzz()
