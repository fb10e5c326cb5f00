"""The failure budget per client address (bridge/failures.py, docs/bridge.md "Failed
requests"): a flood of bad tokens or unknown devices is answered 429 before any expensive
work, stops costing CouchDB reads, refills over time, and never touches a caller that
authenticates; X-Forwarded-For counts only through the configured trusted proxies.

Every request goes over HTTP to a real bridge in front of the real test server. Another
client address is a real one: the loopback network is all of 127.0.0.0/8, so a client bound
to 127.0.0.2 is another TCP peer. The buckets' clock is passed in, so refilling needs no sleep.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from bridge.ratelimit import RateLimiter
from tests.bridge.support import assert_error
from tests.helpers.bridge_client import DeviceClient, assert_documented
from tests.helpers.bridges import BridgeServer, World

BAD_TOKEN = {"Authorization": "Bearer not-a-jwt"}


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def client_at(address: str) -> httpx.Client:
    """An HTTP client whose connections come from ``address`` (any of 127.0.0.0/8)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=60)


def assert_limited(response: httpx.Response, path: str, wait: int) -> None:
    body = assert_error(response, 429, "rate_limited")
    assert response.headers["Retry-After"] == str(wait) and body["details"] == {
        "retry_after": wait}
    assert_documented(str(response.request.url.copy_with(path="/", query=None)).rstrip("/"),
                      path, response)


def test_a_flood_of_bad_tokens_is_refused_429_and_the_budget_refills(
        make_bridge: Callable[..., BridgeServer], world: World) -> None:
    clock = Clock()
    bridge = make_bridge(CARECOUCH_BRIDGE_FAILURE_LIMIT="5/50", RATE_LIMIT_CLOCK=clock)
    url = bridge.url + "/v1/policy"
    good = {"Authorization": "Bearer " + bridge.idp.token(world.user("nurse"),
                                                            [world.group("nurses")])}
    with client_at("127.0.0.1") as attacker, client_at("127.0.0.2") as neighbour:
        for _ in range(5):
            assert_error(attacker.get(url, headers=BAD_TOKEN), 401, "auth.bad_token")
        # 5 failures in 50 s: one refills every 10 s.
        for _ in range(20):
            assert_limited(attacker.get(url, headers=BAD_TOKEN), "/v1/policy", 10)
        # The address is refused whatever it sends (the trade-off docs/bridge.md states) ...
        assert_limited(attacker.get(url, headers=good), "/v1/policy", 10)
        assert_limited(attacker.get(url), "/v1/policy", 10)  # no token at all
        # ... while another address is served meanwhile.
        assert neighbour.get(url, headers=good).status_code == 200
        assert_error(neighbour.get(url, headers=BAD_TOKEN), 401, "auth.bad_token")

        # The refused requests spent nothing: 10 s later one failure is allowed again.
        clock.now += 9
        assert_limited(attacker.get(url, headers=good), "/v1/policy", 1)
        clock.now += 1
        assert attacker.get(url, headers=good).status_code == 200
        assert_error(attacker.get(url, headers=BAD_TOKEN), 401, "auth.bad_token")
        assert_limited(attacker.get(url, headers=BAD_TOKEN), "/v1/policy", 10)
        clock.now += 50  # the whole budget back
        for _ in range(5):
            assert_error(attacker.get(url, headers=BAD_TOKEN), 401, "auth.bad_token")
        assert_limited(attacker.get(url, headers=BAD_TOKEN), "/v1/policy", 10)


def _unknown_device(bridge: BridgeServer, world: World) -> httpx.Response:
    device = DeviceClient(bridge.url, bridge.idp.token(world.user("nurse"),
                                                       [world.group("nurses")]),
                          device_id=f"random-{uuid.uuid4().hex}")
    return device.call("POST", "/v1/credentials", {})


def test_unknown_devices_stop_costing_registry_reads_once_refused(
        make_bridge: Callable[..., BridgeServer], world: World) -> None:
    bridge = make_bridge(CARECOUCH_BRIDGE_FAILURE_LIMIT="5/300", RATE_LIMIT_CLOCK=Clock())
    counts = bridge.services.admin.request_counts  # every request the bridge sends to CouchDB
    counts.clear()
    for _ in range(5):
        assert_error(_unknown_device(bridge, world), 401, "device.unknown")
    # one registry read each (device and revocation record in one POST _all_docs)
    assert dict(counts) == {"POST": 5}
    for _ in range(25):
        assert_limited(_unknown_device(bridge, world), "/v1/credentials", 60)
    assert dict(counts) == {"POST": 5}  # and not one more


def test_a_device_that_authenticates_is_never_limited_by_failures(
        make_bridge: Callable[..., BridgeServer], world: World) -> None:
    bridge = make_bridge(CARECOUCH_BRIDGE_FAILURE_LIMIT="3/3600", RATE_LIMIT_CLOCK=Clock())
    user, groups = world.user("nurse"), [world.group("nurses")]
    device = bridge.enrolled_device(user, groups)
    expired = bridge.idp.token(user, groups, lifetime=-120)
    for round_ in range(3):
        for _ in range(10):
            device.credentials()
        if round_ < 2:
            # The clinician's token expired: one failure, then the device signs in again.
            response = device.call("POST", "/v1/credentials", {}, token=expired)
            assert_error(response, 401, "auth.bad_token")
    # 31 successes spent nothing: the budget still has its third failure ...
    assert_error(device.call("POST", "/v1/credentials", {}, token=expired), 401,
                 "auth.bad_token")
    # ... and only now is the address refused.
    assert_limited(device.call("POST", "/v1/credentials", {}), "/v1/credentials", 1200)


def test_x_forwarded_for_is_ignored_without_trusted_proxies(
        make_bridge: Callable[..., BridgeServer]) -> None:
    bridge = make_bridge(CARECOUCH_BRIDGE_FAILURE_LIMIT="3/3600", RATE_LIMIT_CLOCK=Clock())
    url = bridge.url + "/v1/policy"
    for n in range(3):
        response = httpx.get(url, headers={**BAD_TOKEN, "X-Forwarded-For": f"198.51.100.{n}"})
        assert_error(response, 401, "auth.bad_token")
    # A fresh forged address each time does not buy a fresh budget.
    response = httpx.get(url, headers={**BAD_TOKEN, "X-Forwarded-For": "198.51.100.99"})
    assert_limited(response, "/v1/policy", 1200)


def _through_two_proxies(url: str, client: str, forged: str,
                         token: dict[str, str]) -> httpx.Response:
    # The client forged the leftmost entry itself; the first proxy appended the client's
    # address, the second proxy the first's. The bridge's TCP peer is the second proxy.
    return httpx.get(url, headers={**token, "X-Forwarded-For": f"{forged}, {client}, 10.0.0.9"})


@pytest.mark.parametrize(("client", "same_client", "other_client"), [
    ("203.0.113.7", "203.0.113.7", "203.0.113.8"),
    # IPv6 counts per /64, the block one subscriber gets.
    ("2001:db8:1:2::a", "2001:db8:1:2:ffff::b", "2001:db8:1:3::a"),
], ids=["ipv4", "ipv6-per-64"])
def test_x_forwarded_for_is_read_at_the_trusted_hop(
        make_bridge: Callable[..., BridgeServer], world: World, client: str,
        same_client: str, other_client: str) -> None:
    bridge = make_bridge(CARECOUCH_BRIDGE_FAILURE_LIMIT="3/3600",
                         CARECOUCH_BRIDGE_TRUSTED_PROXIES="2", RATE_LIMIT_CLOCK=Clock())
    url = bridge.url + "/v1/policy"
    good = {"Authorization": "Bearer " + bridge.idp.token(world.user("nurse"),
                                                            [world.group("nurses")])}
    for n in range(3):
        assert_error(_through_two_proxies(url, client, f"192.0.2.{n}", BAD_TOKEN), 401,
                     "auth.bad_token")
    assert_limited(_through_two_proxies(url, same_client, "192.0.2.50", good), "/v1/policy",
                   1200)
    # Another client behind the same proxies has its own budget, and so does the proxy
    # itself when it calls without the header (127.0.0.1, the TCP peer).
    assert _through_two_proxies(url, other_client, "192.0.2.1", good).status_code == 200
    assert_error(_through_two_proxies(url, other_client, "192.0.2.1", BAD_TOKEN), 401,
                 "auth.bad_token")
    assert httpx.get(url, headers=good).status_code == 200


def test_429_is_documented_with_retry_after_wherever_a_caller_authenticates(
        bridge: BridgeServer) -> None:
    document: dict[str, Any] = httpx.get(bridge.url + "/openapi.json").json()
    limited = document["components"]["responses"]["RateLimited"]
    assert limited["headers"]["Retry-After"]["required"] is True
    assert limited["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/RateLimited"}
    checked = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if operation["security"]:
                assert operation["responses"]["429"] == {
                    "$ref": "#/components/responses/RateLimited"}, (method, path)
                checked += 1
    # Every route that authenticates: break-glass reviews, the fleet (devices, reports,
    # metrics) and the dashboard's page and sign-in included.
    assert checked == 17


def test_buckets_stay_bounded_under_a_flood_of_distinct_addresses() -> None:
    # No bucket is full during a flood (each has just been spent), so forgetting only the
    # full ones bounded nothing: the least recently used one goes instead.
    clock = Clock()
    limiter = RateLimiter(1, 3600, clock=clock, max_buckets=1000)
    for n in range(20_000):
        limiter.spend(f"address:{n}")
    assert len(limiter) == 1000
    with pytest.raises(Exception, match="retry in 3600 s"):
        limiter.check("address:19999")  # the most recent are remembered
    limiter.check("address:0")  # the oldest forgotten: a fresh bucket
