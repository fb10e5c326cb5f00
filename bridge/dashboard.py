"""The fleet dashboard: one page for IT and clinical leads, policy admins only.

Signing in: the page takes the identity provider's token, as every bridge call does, from
either place:

- ``Authorization: Bearer <token>``: production puts the page behind the organisation's
  single sign-on at the TLS proxy (an OIDC proxy such as oauth2-proxy passes the signed-in
  user's ID token on), so admins open the page and are signed in;
- a cookie set by ``POST /dashboard/login`` from a pasted token (development: ``./dev token
  it-lead it-service-desk``; anywhere without such a proxy). The cookie holds that token and
  nothing else (``HttpOnly``, ``SameSite=Strict``, ``Path=/dashboard``, ``Secure`` but on
  this machine over plain HTTP)
  and lapses with it: the bridge stays stateless and checks the token, the user's revocation
  and the policy's admins on every request.

Without a token the page is the sign-in form and shows nothing of the fleet; a token that is
not a policy admin's is refused (403). Refusals are pages for a browser and the one JSON
error shape for anyone else; a bad token spends the address's failure budget as elsewhere.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from flask import Blueprint, Response, redirect, render_template, request
from werkzeug.wrappers import Response as Redirect

from carecouch.fleet_summary import fleet_devices, fleet_summary
from carecouch.ids import InvalidCaseloadId, check_caseload_id

from .auth import bearer_token, require_admin, user_from_token
from .dashboard_view import page_model
from .errors import ApiError, error_response
from .failures import AuthFailure, check, client_key
from .fleet import fleet
from .idp import Identity
from .services import services

blueprint = Blueprint("dashboard", __name__, template_folder="templates")
COOKIE = "carecouch_dashboard"
PATH = "/dashboard"
DEFAULT_DAYS = 14
MAX_TOKEN = 8192
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
HEADERS = {
    # No script, no frames, nothing fetched from elsewhere: the page is HTML, inline CSS
    # and inline SVG.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "img-src data:; form-action 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store", "X-Frame-Options": "DENY",
}


def _html(body: str, status: int = 200) -> Response:
    response = Response(body, status=status, content_type="text/html; charset=utf-8")
    response.headers.update(HEADERS)
    return response


def _wants_html() -> bool:
    return request.accept_mimetypes.best_match(["application/json", "text/html"]) == \
        "text/html"


@blueprint.errorhandler(ApiError)
def _refused(exc: ApiError) -> Response:
    if isinstance(exc, AuthFailure):
        services().failures.spend(client_key())
    if exc.status == 429 or not _wants_html():  # a rate limit: the documented JSON
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
    response = _html(render_template("signin.html", message=exc.message,
                                     signed_in=request.cookies.get(COOKIE) is not None),
                     exc.status)
    response.headers.update(exc.headers)
    if exc.code.startswith("auth."):  # a token that no longer works: forget it
        response.delete_cookie(COOKIE, path=PATH)
    return response


def _token() -> str | None:
    return bearer_token() or request.cookies.get(COOKIE) or None


def _admin(token: str) -> Identity:
    check()  # an address that failed too often is refused before any token is verified
    return require_admin(user_from_token(token))


def _days() -> int:
    limit = fleet().store.retention_days
    raw = request.args.get("days", str(min(DEFAULT_DAYS, limit)))
    if not raw.isdigit() or not 1 <= int(raw) <= limit:
        raise ApiError(400, "request.bad_field", f"days must be a whole number from 1 to "
                       f"{limit}", {"field": "days"})
    return int(raw)


def _caseload() -> str | None:
    raw = request.args.get("caseload") or None
    if raw is None:
        return None
    try:
        return check_caseload_id(raw)
    except InvalidCaseloadId as exc:
        raise ApiError(400, "request.bad_field", str(exc), {"field": "caseload"}) from exc


@blueprint.get(PATH)
def page() -> Response:
    days, caseload = _days(), _caseload()
    token = _token()
    if token is None:
        return _html(render_template("signin.html", message=None, signed_in=False))
    identity = _admin(token)
    now = datetime.now(UTC)
    admin, store = services().admin, fleet().store
    devices = fleet_devices(admin, store, now=now)
    since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0,
                                                     microsecond=0)
    summary = fleet_summary(admin, store, caseloads=[caseload] if caseload else (),
                            since=since, now=now, devices=devices)
    model: dict[str, Any] = page_model(summary, devices, caseload=caseload, days=days)
    ids = services().caseloads.active_ids()
    return _html(render_template("dashboard.html", user=identity.user, caseload_ids=ids,
                                 retention=store.retention_days, **model))


@blueprint.post(f"{PATH}/login")
def login() -> Redirect:
    token = (request.form.get("token") or "").strip()
    if not token or len(token) > MAX_TOKEN:
        raise ApiError(400, "request.missing_field", "paste a policy admin's token from the "
                       "identity provider", {"field": "token"})
    _admin(token)
    response = redirect(PATH, code=303)
    # Secure unless this is plain HTTP to this machine (development): behind the TLS proxy
    # the bridge itself is spoken to in plain HTTP, and the cookie must still never be.
    secure = request.is_secure or request.host.split(":")[0] not in LOOPBACK
    response.set_cookie(COOKIE, token, max_age=_lifetime(token), path=PATH, httponly=True,
                        secure=secure, samesite="Strict")
    return response


def _lifetime(token: str) -> int:
    """Seconds until the (verified) token expires: the cookie lapses with it."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return max(1, int(claims["exp"]) - int(datetime.now(UTC).timestamp()))


@blueprint.post(f"{PATH}/logout")
def logout() -> Redirect:
    response = redirect(PATH, code=303)
    response.delete_cookie(COOKIE, path=PATH)
    return response
