"""Fixtures for caseload provisioning: unique ids cleaned up after the test, the CLI with the
test server's credentials, and a copy of the couch directory a test may edit."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from admin_cli.context import AppContext
from admin_cli.main import cli as carecouch_cli
from carecouch.audit import AuditLog
from carecouch.config import default_couch_dir
from carecouch.couch import CouchClient, Doc
from carecouch.ids import caseload_db, registry_doc_id
from carecouch.registry import REGISTRY_DB


def new_id() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def caseload_ids(admin: CouchClient) -> Iterator[Callable[[], str]]:
    """Factory of fresh caseload ids; their databases and registry records go afterwards."""
    made: list[str] = []

    def make() -> str:
        made.append(new_id())
        return made[-1]

    yield make
    registry = admin.db(REGISTRY_DB)
    for caseload_id in made:
        admin.db(caseload_db(caseload_id)).destroy(missing_ok=True)
        if registry.exists():
            doc = registry.get_or_none(registry_doc_id(caseload_id))
            if doc is not None:
                registry.delete(doc["_id"], doc["_rev"])


@pytest.fixture
def couch_env(server: Any) -> dict[str, str]:
    """The CLI's environment pointing at the test server (restored after the test)."""
    env = {"COUCHDB_URL": server.url, "COUCHDB_USER": server.user,
           "COUCHDB_PASSWORD": server.password}
    os.environ.update(env)
    os.environ.pop("CARECOUCH_COUCH_DIR", None)
    return env


@pytest.fixture
def run_cli(couch_env: dict[str, str]) -> Callable[..., Result]:
    """``run_cli("caseload", "create", id, input=..., obj=AppContext())``."""

    def run(*args: str, input: str | None = None, obj: AppContext | None = None) -> Result:
        app = obj or AppContext()
        try:
            return CliRunner().invoke(carecouch_cli, list(args), input=input, obj=app,
                                      catch_exceptions=False)
        finally:
            app.close()

    return run


@pytest.fixture
def couch_dir(tmp_path: Path) -> Path:
    """A copy of the project's couch/ directory that the test may change."""
    target = tmp_path / "couch"
    shutil.copytree(default_couch_dir(), target)
    return target


def audit_entries(admin: CouchClient, subject: str) -> list[Doc]:
    return AuditLog(admin, "test").entries(subject=subject)


def registry_record(admin: CouchClient, caseload_id: str) -> Doc | None:
    return admin.db(REGISTRY_DB).get_or_none(registry_doc_id(caseload_id))


@pytest.fixture
def views_couch_dir(tmp_path: Path) -> Path:
    """Only the project's design_docs/: for tests that write bare documents into a caseload,
    which the record rules (validate_functions/) would refuse."""
    target = tmp_path / "views-couch"
    shutil.copytree(default_couch_dir() / "design_docs", target / "design_docs")
    return target
