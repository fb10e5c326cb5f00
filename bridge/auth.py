"""Who is calling: the identity-provider user (bearer JWT) and what the policy grants them."""

from __future__ import annotations

from flask import request

from carecouch.clock import parse_utc
from carecouch.ids import InvalidName, check_user_id
from carecouch.policy import Grant, Policy

from .errors import ApiError
from .failures import AuthFailure, check
from .idp import BadToken, Identity
from .services import services

BEARER = "bearer "


def require_user() -> Identity:
    """The caller, from ``Authorization: Bearer <JWT>``; 401 otherwise. Also spends one token
    of the user's rate limit and refuses tokens issued before the user was revoked. An
    address that has failed too often is refused first, before any token is verified."""
    check()
    identity = identify()
    admit(identity, services().devices.user_revoked_at(identity.user))
    return identity


def bearer_token() -> str | None:
    """The token of ``Authorization: Bearer <token>``, or None when there is none."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith(BEARER) and header[len(BEARER):].strip():
        return header[len(BEARER):].strip()
    return None


def identify() -> Identity:
    """The identity-provider user of the bearer token (checked here: no CouchDB request)."""
    token = bearer_token()
    if token is None:
        raise AuthFailure(401, "auth.missing_token", "send Authorization: Bearer <token from "
                          "the identity provider>", headers={"WWW-Authenticate": "Bearer"})
    return verify_token(token)


def verify_token(token: str) -> Identity:
    """The user an identity-provider token names (no CouchDB request); the dashboard's
    sign-in cookie carries the same token as the bearer header."""
    try:
        identity = services().identity.verify(token)
    except BadToken as exc:
        raise AuthFailure(401, "auth.bad_token", str(exc),
                          headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}) from exc
    try:
        check_user_id(identity.user)
    except InvalidName as exc:
        raise AuthFailure(403, "auth.bad_user", f"the identity provider's user name cannot be "
                          f"used for CouchDB credentials: {exc}") from exc
    return identity


def admit(identity: Identity, revoked_at: str | None) -> None:
    """Spend the user's rate limit; 401 if ``revoked_at`` (the user's last revocation, as the
    registry holds it now) is at or after the token was issued."""
    services().limiter.take(f"user:{identity.user}")
    refuse_if_revoked(identity, revoked_at)


def user_from_token(token: str) -> Identity:
    """The caller of a token taken from elsewhere than the header (the dashboard's
    cookie), checked and admitted as :func:`require_user` does."""
    identity = verify_token(token)
    admit(identity, services().devices.user_revoked_at(identity.user))
    return identity


def require_admin(identity: Identity) -> Identity:
    """``identity``, if the access policy makes them a policy admin; 403 otherwise."""
    _, grant = policy_and_grant(identity)
    if not grant.admin:
        raise ApiError(403, "auth.not_admin", f"{identity.user} is not a policy admin; only "
                       "policy admins see the fleet")
    return identity


def refuse_if_revoked(identity: Identity, revoked_at: str | None) -> None:
    """401 when the user was revoked after the identity provider issued this token."""
    if revoked_at is not None and identity.issued_at <= _epoch(revoked_at):
        raise AuthFailure(401, "auth.revoked", f"{identity.user}'s access was revoked at "
                          f"{revoked_at}; sign in to the identity provider again")


def _epoch(iso: str) -> float:
    try:
        return parse_utc(iso).timestamp()
    except ValueError:
        return float("inf")  # an unreadable revocation time refuses every token: fail closed


def policy_and_grant(identity: Identity) -> tuple[Policy, Grant]:
    """The policy and what it gives the caller. Only the caseload records the caller's rules
    can grant are read (by id and by team), so a login costs the same however large the
    registry grows."""
    s = services()
    policy = s.policy.get()
    ids, teams = policy.caseload_scope(identity.user, identity.groups)
    return policy, policy.evaluate(identity.user, identity.groups,
                                   s.caseloads.caseloads_for(ids, teams))


def require_grant(identity: Identity) -> tuple[Policy, Grant]:
    """The caller's grant; 403 when the policy gives them nothing at all."""
    policy, grant = policy_and_grant(identity)
    if not grant.any and not grant.break_glass and not grant.admin:
        raise ApiError(403, "policy.no_grant", f"the access policy grants {identity.user} "
                       "nothing; ask IT", {"policy_version": policy.version})
    return policy, grant
