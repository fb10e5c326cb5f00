"""What more than one of the bridge's test modules checks: its error bodies, and whether a
credential it issued works on CouchDB."""

from __future__ import annotations

from typing import Any

import httpx

from carecouch.couch import CouchClient
from carecouch.errors import CouchUnauthorized
from tests.helpers.waiting import wait_until


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "message", "details"}, body
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"] and "\n" not in body["message"]
    return dict(body)


def works(server: Any, username: str, password: str) -> bool:
    with CouchClient(server.url, username, password, retries=0) as client:
        try:
            return bool(client.session()["userCtx"]["name"] == username)
        except CouchUnauthorized:
            return False


def refused_soon(server: Any, body: dict[str, Any], timeout: float = 10) -> bool:
    """CouchDB evicts a deleted or changed user from its auth cache asynchronously."""
    return wait_until(lambda: not works(server, body["username"], body["password"]),
                      timeout=timeout, what=f"the server refuses {body['username']}")
