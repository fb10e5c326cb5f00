"""Caseloads with real conflicts, made the way the field makes them (support.py): devices that
edited the same record offline replicate their revisions through the caseload's validation.
The caseload and its people come from tests/helpers/provisioned.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from admin_cli.context import AppContext
from admin_cli.main import cli as carecouch_cli
from carecouch.couch import CouchClient
from tests.conflicts.support import REPLICAS, Cli
from tests.helpers.fixtures import User


@pytest.fixture(autouse=True)
def _replicas_go(admin: CouchClient) -> Iterator[None]:
    """The devices' replicas (support.Replica) are removed after each test."""
    yield
    while REPLICAS:
        admin.db(REPLICAS.pop().name).destroy(missing_ok=True)


@pytest.fixture
def cli(couch_env: dict[str, str]) -> Cli:
    """``cli("conflicts", "list", user=resolver.account, input="y\\n")``: the carecouch command
    as the server admin, or as ``user`` (COUCHDB_USER is that account)."""

    def run(*args: str, user: User | None = None, input: str | None = None) -> Result:
        saved = {k: os.environ.get(k) for k in ("COUCHDB_USER", "COUCHDB_PASSWORD")}
        if user is not None:
            os.environ.update(COUCHDB_USER=user.name, COUCHDB_PASSWORD=user.password)
        app = AppContext()
        try:
            return CliRunner().invoke(carecouch_cli, list(args), input=input, obj=app,
                                      catch_exceptions=False)
        finally:
            app.close()
            for key, value in saved.items():
                if value is not None:
                    os.environ[key] = value

    return run
