"""What the reference device's tests share beyond their fixtures (tests/device/conftest.py):
a fast store, member credentials, clinicians of the test identity provider, and exclusive
records made through the bridge; the fleet tests enrol devices with them too."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from click.testing import Result

from mobile_stub.credentials import Credentials
from mobile_stub.replication import PullOptions, PushOptions, ReplicatorOptions, RetryPolicy
from tests.helpers.bridges import BridgeServer, World
from tests.helpers.fixtures import User

ROLE = "caseload:devtest"
PASSPHRASE = "ward seven blue kettle"
# The real KDF costs 64 MiB and ~0.2 s on purpose; tests open many stores.
FAST_KDF: dict[str, Any] = {"memory_kib": 8 * 1024, "iterations": 1}
FAST_RETRY = RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.05)


def fast_options(**pull: Any) -> ReplicatorOptions:
    return ReplicatorOptions(pull=PullOptions(**pull), push=PushOptions(), retry=FAST_RETRY)


class UserCredentials:
    """A provider over a test user; ``renew`` makes a fresh real CouchDB user (as the bridge
    will), or returns ``renew_with`` when the test wants a particular answer."""

    def __init__(self, user: User, make_user: Callable[..., User]) -> None:
        self.user = user
        self._make_user = make_user
        self.renewals = 0
        self.renew_with: Credentials | None = None
        self.can_renew = True

    def current(self) -> Credentials:
        return Credentials(self.user.name, self.user.password)

    def renew(self) -> Credentials | None:
        self.renewals += 1
        if not self.can_renew:
            return None
        if self.renew_with is not None:
            return self.renew_with
        self.user = self._make_user(roles=[ROLE])
        return self.current()


Invoke = Callable[..., Result]


@dataclass
class Clinician:
    """A user of the test identity provider; ``token()`` mints a fresh identity token."""

    user: str
    groups: list[str]
    bridge: BridgeServer

    def token(self, **kwargs: Any) -> str:
        return self.bridge.idp.token(self.user, self.groups, **kwargs)


def exclusive_record(bridge: BridgeServer, world: World, caseload: str = "a", *,
                     record_type: str = "cd_check", **fields: Any) -> str:
    """A new exclusive record (a controlled-drug check unless told), created through the
    bridge by a colleague's device as the record rules require; its id."""
    colleague = bridge.enrolled_device(world.user(f"colleague{uuid.uuid4().hex[:6]}"),
                                       [world.group("nurses")])
    created = colleague.call("POST", "/v1/records", {
        "caseload": world.caseloads[caseload], "type": record_type, "subject": "patient-0042",
        "fields": fields or {"medication": "morphine sulfate 10 mg", "expected_count": 12}})
    assert created.status_code == 201, created.text
    return str(created.json()["record"]["_id"])
