"""Fixtures for CouchDB users: real ``_users`` documents, removed after each test."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from carecouch.couch import CouchClient


@dataclass
class User:
    name: str
    password: str
    roles: list[str]
    client: CouchClient


@pytest.fixture
def make_user(admin: CouchClient, server: object) -> Iterator[Callable[..., User]]:
    """Factory: ``make_user(roles=[...])`` creates a CouchDB user and a client logged in as it."""
    made: list[User] = []
    users = admin.db("_users")

    def make(roles: list[str] | None = None, *, name: str | None = None) -> User:
        name = name or f"u{secrets.token_hex(6)}"
        password = secrets.token_urlsafe(12)
        users.put({"_id": f"org.couchdb.user:{name}", "name": name, "type": "user",
                   "roles": list(roles or []), "password": password})
        client = CouchClient(admin.url, name, password, retries=0)
        user = User(name, password, list(roles or []), client)
        made.append(user)
        return user

    yield make
    for user in made:
        user.client.close()
        doc = users.get_or_none(f"org.couchdb.user:{user.name}")
        if doc is not None:
            users.delete(doc["_id"], doc["_rev"])
