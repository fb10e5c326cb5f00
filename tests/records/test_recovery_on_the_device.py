"""Nothing stranded: every refusal the server gives a device has a way out that works, end to
end and offline — ``correct`` for an append-only record, ``discard`` for a revision the server
never stored or an edit it refused — and the refused body always stays in the rejection log.

The refused records here were saved by an older version of the device software, before it
checked the rules (or before the rules changed): the store's own API writes them, unchecked.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from carecouch.ids import member_role
from mobile_stub.cli import main
from mobile_stub.store import DeviceStore, Rejections
from tests.helpers.fixtures import User
from tests.helpers.provisioned import Caseload
from tests.helpers.records import care_plan, now, observation
from tests.helpers.server import Server

PASSPHRASE = "a long enough test passphrase"
Run = Callable[..., Result]


class Tablet:
    def __init__(self, path: Path, caseload: Caseload, nurse: User) -> None:
        self.path, self.db, self.nurse = path, caseload.db.name, nurse

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    def json(self, *args: str) -> object:
        result = self.run("--json", *args)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def unchecked(self, doc: dict[str, object]) -> str:
        """Save ``doc`` as the older software did: straight into the store."""
        with DeviceStore.open(self.path, PASSPHRASE) as store:
            return store.database(self.db).put(doc)

    def rejections(self, state: str | None = None) -> list[dict[str, object]]:
        with DeviceStore.open(self.path, PASSPHRASE) as store:
            return [r.to_json() | {"doc": r.doc}
                    for r in Rejections(store.database(self.db)).list(state=state)]


@pytest.fixture
def tablet(tmp_path: Path, server: Server, caseload: Caseload, make_user: Callable[..., User],
           monkeypatch: pytest.MonkeyPatch) -> Iterator[Tablet]:
    nurse = make_user(["clinical:nurse", member_role(caseload.id)])
    path = tmp_path / "device" / "store.sqlite"
    monkeypatch.setenv("CARECOUCH_DEVICE_STORE", str(path))
    monkeypatch.setenv("CARECOUCH_DEVICE_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("CARECOUCH_DEVICE_USER", nurse.name)
    monkeypatch.setenv("CARECOUCH_DEVICE_PASSWORD", nurse.password)
    device = Tablet(path, caseload, nurse)
    assert device.run("init", "--server", server.url, "--db", caseload.db.name).exit_code == 0
    yield device


def legacy_observation(nurse: User, **vitals: object) -> dict[str, object]:
    """An observation as software before bound ids made it: ``observation:<uuid>``."""
    doc = observation(nurse.name, "tablet", **vitals)
    return {**doc, "_id": f"observation:{uuid.uuid4()}"}


def test_correcting_a_refused_observation_offline(tablet: Tablet, caseload: Caseload) -> None:
    old = legacy_observation(tablet.nurse, pulse=118)  # NEWS2 2
    tablet.unchecked(old)
    refused = tablet.run("sync")
    assert refused.exit_code == 1
    (rejection,) = tablet.rejections()
    assert rejection["code"] == "append_only.not_owner"
    assert f"carecouch-device correct {old['_id']}" in tablet.run("status").stdout

    # Offline the whole time: the nurse corrects it (the pulse was 108, in fact).
    assert tablet.run("offline").exit_code == 0
    fixed = tablet.json("correct", str(old["_id"]), "--set", "pulse=108")
    assert isinstance(fixed, dict) and fixed["corrects"] == old["_id"]
    (db,) = tablet.json("status")["databases"]  # type: ignore[index]
    assert (db["refused"], db["saved"]) == (0, 1)
    shown = tablet.json("show", fixed["id"])
    assert isinstance(shown, dict) and shown["state"] == "saved"
    record = shown["record"]
    assert record["pulse"] == 108 and record["news2"] == 1  # derived afresh
    assert "amends" not in record  # the server never held the refused one
    assert tablet.run("online").exit_code == 0

    assert tablet.run("sync").exit_code == 0
    assert caseload.db.get(fixed["id"])["pulse"] == 108
    assert caseload.db.get_or_none(str(old["_id"])) is None
    (kept,) = tablet.rejections(state="corrected")
    assert kept["resolved_by"] == fixed["id"] and kept["doc"]["pulse"] == 118  # nothing lost
    assert tablet.json("show", fixed["id"])["state"] == "confirmed"  # type: ignore[index]


def test_discarding_a_revision_the_server_never_stored_offline(
        tablet: Tablet, caseload: Caseload) -> None:
    old = legacy_observation(tablet.nurse)
    tablet.unchecked(old)
    assert tablet.run("sync").exit_code == 1
    assert tablet.run("offline").exit_code == 0
    gone = tablet.run("discard", str(old["_id"]), "--yes")
    assert gone.exit_code == 0, gone.output
    (db,) = tablet.json("status")["databases"]  # type: ignore[index]
    assert (db["refused"], db["pending"]) == (0, 0)
    assert "no document" in tablet.run("show", str(old["_id"])).stderr
    (kept,) = tablet.rejections(state="discarded")
    assert kept["doc"]["_id"] == old["_id"]
    assert tablet.run("online").exit_code == 0
    assert tablet.run("sync").exit_code == 0  # nothing left to refuse


def test_discarding_a_refused_edit_of_a_record_the_server_holds_offline(
        tablet: Tablet, caseload: Caseload) -> None:
    plan = care_plan(tablet.nurse.name, "tablet")
    caseload.db.put(plan)  # the server holds the care plan (written by an admin here)
    assert tablet.run("sync").exit_code == 0
    held = tablet.json("show", str(plan["_id"]))["record"]  # type: ignore[index]
    # An older device stamped a change it did not make: mergeable.forged_stamp.
    forged = {**held, "changed": {**held["changed"], "goals": {"by": "someone", "at": now()}}}
    tablet.unchecked(forged)
    assert tablet.run("sync").exit_code == 1
    assert tablet.rejections()[0]["code"] == "mergeable.forged_stamp"

    assert tablet.run("offline").exit_code == 0
    assert tablet.run("discard", str(plan["_id"]), "--yes").exit_code == 0
    text = tablet.run("show", str(plan["_id"])).stdout
    assert "read back from the server at the next sync" in text
    assert tablet.run("online").exit_code == 0
    assert tablet.run("sync").exit_code == 0
    shown = tablet.json("show", str(plan["_id"]))
    assert isinstance(shown, dict) and shown["state"] == "from the server"
    assert shown["record"]["title"] == plan["title"] and shown["body_on_device"]
