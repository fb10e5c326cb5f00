"""The failure budget: how many failed authentications one client address may cause.

Without it a flood of bad tokens is verified one by one forever, and every request naming an
unknown device id costs a registry read (random ids defeat any cache of unknown ones). So
every authentication failure (:class:`AuthFailure`) spends one token of its address's
bucket, and :func:`check` refuses the address with 429 **before** any registry read or
signature check once the bucket is empty. A request that authenticates spends nothing: a
busy fleet behind one NAT address is never slowed by its own successes, only by failures
(an attacker behind the same NAT can therefore make its devices wait; docs/bridge.md).

The address is ``request.remote_addr``; behind trusted proxies (``TRUSTED_PROXIES``) the
app's ProxyFix has already put the client's hop there. IPv6 clients are counted per /64,
the block one subscriber gets: counting single addresses would give an attacker 2^64 budgets.
"""

from __future__ import annotations

import ipaddress

from flask import Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

from .errors import ApiError, error_response
from .services import services


class AuthFailure(ApiError):
    """An answer to a caller who did not prove who they are (bad, missing or expired token;
    unknown, revoked or badly signing device; replayed nonce): spends the failure budget."""


def client_key() -> str:
    """The failure-budget key of the caller: its IPv4 address or IPv6 /64."""
    raw = request.remote_addr or ""
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return f"address:{raw[:64]}"  # a unix socket, or what a trusted proxy wrote
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"address:{address.ipv4_mapped}"
        return f"address:{ipaddress.ip_network((address, 64), strict=False)}"
    return f"address:{address}"


def check() -> None:
    """429 when the caller's address has spent its failure budget; otherwise free."""
    services().failures.check(client_key())


def init_app(app: Flask, trusted_proxies: int) -> None:
    if trusted_proxies:
        # Only the hops the deployment vouches for: the client is the address the
        # outermost trusted proxy saw. Anything a client writes itself into
        # X-Forwarded-For lies further left and is never read.
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=trusted_proxies, x_proto=0, x_host=0, x_port=0, x_prefix=0)

    @app.errorhandler(AuthFailure)
    def failed(exc: AuthFailure) -> Response:
        services().failures.spend(client_key())
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
