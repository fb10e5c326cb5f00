"""A provisioned caseload (the real design documents and security) and its people: a fixtures
plugin registered once in tests/conftest.py (the record-rule and conflict tests use it).

Each person is a real CouchDB user. Clinicians on devices are named ``<user>~<device>``, as
the bridge names device sessions; the record rules read the clinician and the device from it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from carecouch.config import default_couch_dir
from carecouch.couch import CouchClient, Database
from carecouch.ids import caseload_db, member_role
from carecouch.provisioning import Provisioner
from carecouch.records import RECORD_TYPES_FILE
from tests.helpers.fixtures import User


@dataclass
class Caseload:
    id: str
    db: Database  # as the server admin


@dataclass
class Person:
    user: str  # the clinician (what `author` and `lease.holder` hold)
    device: str
    account: User

    def db(self, caseload: Caseload) -> Database:
        return self.account.client.db(caseload.db.name)


@pytest.fixture
def caseload(admin: CouchClient, caseload_ids: Callable[[], str],
             request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Caseload]:
    """A caseload with the shipped rules; ``@pytest.mark.registry_change(fn)`` provisions it
    with a registry that ``fn`` changed instead (rules that the shipped one cannot reach)."""
    caseload_id = caseload_ids()
    couch_dir = None
    marker = request.node.get_closest_marker("registry_change")
    if marker is not None:
        couch_dir = tmp_path / "couch"
        shutil.copytree(default_couch_dir(), couch_dir)
        registry_file = couch_dir / "validate_functions" / RECORD_TYPES_FILE
        registry = json.loads(registry_file.read_text())
        marker.args[0](registry)
        registry_file.write_text(json.dumps(registry))
    Provisioner(admin, couch_dir=couch_dir).create(caseload_id, name="Record rules test")
    yield Caseload(caseload_id, admin.db(caseload_db(caseload_id)))


@pytest.fixture
def person(caseload: Caseload, make_user: Callable[..., User]) -> Callable[..., Person]:
    """``person("nurse")``: a member of the caseload with ``clinical:nurse`` on a device."""
    counter = iter(range(1000))

    def make(*roles: str, user: str | None = None, device: str = "tablet-1",
             member: bool = True) -> Person:
        user = user or f"clin{next(counter)}-{caseload.id}"
        granted = [r if ":" in r else f"clinical:{r}" for r in roles]
        if member:
            granted.append(member_role(caseload.id))
        account = make_user(granted, name=f"{user}~{device}")
        return Person(user, device, account)

    return make


@pytest.fixture
def bridge_account(caseload: Caseload, make_user: Callable[..., User]) -> Person:
    """The bridge's CouchDB account, a member of the caseload (the bridge itself, on a real
    port, is the ``bridge`` fixture: tests/helpers/bridges.py)."""
    account = make_user(["carecouch:bridge", member_role(caseload.id)],
                        name=f"bridge-{caseload.id}")
    return Person(account.name, "bridge", account)
