"""The provisioning library against a real server: write order, idempotence, repair."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from carecouch.couch import CouchClient
from carecouch.ddocs import MAIN_DDOC_ID, assemble, stamped_version
from carecouch.errors import CouchError
from carecouch.ids import caseload_db, member_role
from carecouch.manifest import CaseloadSpec
from carecouch.provisioning import Observed, Provisioner, ProvisioningFailed, Target
from carecouch.registry import REGISTRY_DB, CaseloadRegistry
from carecouch.security import (
    admin_only,
    caseload_security,
    ensure_admin_only_db,
    same_security,
)
from tests.helpers.caseloads import audit_entries, registry_record
from tests.helpers.fixtures import User
from tests.helpers.server import Server, unique_name

IdFactory = Callable[[], str]


@pytest.fixture
def fresh_client(server: Server) -> Iterator[CouchClient]:
    """A client of its own, so its request counters count only this test's requests."""
    with CouchClient(server.url, server.user, server.password) as client:
        yield client


def specs(*ids: str) -> list[CaseloadSpec]:
    return [CaseloadSpec(i, f"Caseload {i}", "team-a") for i in ids]


def test_new_caseload_is_closed_until_its_design_docs_are_in(admin: CouchClient,
                                                             caseload_ids: IdFactory) -> None:
    caseload_id = caseload_ids()
    provisioner = Provisioner(admin)
    plan = provisioner.plan(*_target_and_observed(provisioner, caseload_id))
    assert [kind for kind, _ in plan.steps] == ["create_db", "security", "ddoc", "security"]
    assert plan.steps[1][1] == admin_only()  # members get in only after the rules are there
    assert plan.steps[3][1] == caseload_security(caseload_id)


def _target_and_observed(provisioner: Provisioner,
                         caseload_id: str) -> tuple[Target, Observed]:
    return Target(caseload_id, caseload_id, None), provisioner.observe([caseload_id])[caseload_id]


def test_second_run_sends_no_write(fresh_client: CouchClient, caseload_ids: IdFactory) -> None:
    ids = [caseload_ids() for _ in range(3)]
    Provisioner(fresh_client).apply(specs(*ids))
    fresh_client.request_counts.clear()
    plans = Provisioner(fresh_client).apply(specs(*ids))
    assert [p.changed for p in plans] == [False, False, False]
    assert set(fresh_client.request_counts) <= {"GET", "HEAD"}
    # One registry read, then two reads per caseload (security, design docs).
    assert sum(fresh_client.request_counts.values()) == 1 + 2 * len(ids)


def test_dry_run_sends_no_write(fresh_client: CouchClient, caseload_ids: IdFactory) -> None:
    caseload_id = caseload_ids()
    plans = Provisioner(fresh_client).apply(specs(caseload_id), dry_run=True)
    assert plans[0].actions == ["create"]
    assert set(fresh_client.request_counts) <= {"GET", "HEAD"}
    assert not fresh_client.db(caseload_db(caseload_id)).exists()


def test_interrupted_create_stays_closed_and_is_finished_by_a_rerun(
        admin: CouchClient, server: Server, caseload_ids: IdFactory,
        make_user: Callable[..., User]) -> None:
    caseload_id = caseload_ids()
    member = make_user(roles=[member_role(caseload_id)])
    provisioner = Provisioner(admin)
    plan = provisioner.plan(*_target_and_observed(provisioner, caseload_id))
    # The run dies after creating the database and closing it (steps 1-2 of 4).
    plan.steps = plan.steps[:2]
    provisioner._apply_db_steps(plan)
    with pytest.raises(CouchError) as info:
        member.client.db(caseload_db(caseload_id)).info()
    assert info.value.status == 403  # closed: no member access without the rules
    assert registry_record(admin, caseload_id) is None

    Provisioner(admin).apply(specs(caseload_id))
    assert member.client.db(caseload_db(caseload_id)).info()["db_name"] == caseload_db(
        caseload_id)
    [entry] = audit_entries(admin, caseload_id)
    assert entry["action"] == "caseload.create" and entry["details"]["existing_db"] is True
    assert registry_record(admin, caseload_id)["status"] == "active"  # type: ignore[index]


def test_lost_registry_record_is_rewritten_without_touching_the_database(
        admin: CouchClient, caseload_ids: IdFactory) -> None:
    caseload_id = caseload_ids()
    Provisioner(admin).apply(specs(caseload_id))
    ddoc_rev = admin.db(caseload_db(caseload_id)).get(MAIN_DDOC_ID)["_rev"]
    record = registry_record(admin, caseload_id)
    assert record is not None
    admin.db(REGISTRY_DB).delete(record["_id"], record["_rev"])

    [plan] = Provisioner(admin).apply(specs(caseload_id))
    assert [kind for kind, _ in plan.steps] == []
    assert admin.db(caseload_db(caseload_id)).get(MAIN_DDOC_ID)["_rev"] == ddoc_rev
    assert registry_record(admin, caseload_id) is not None


def test_hand_edited_design_doc_is_put_back(admin: CouchClient,
                                            caseload_ids: IdFactory) -> None:
    caseload_id = caseload_ids()
    Provisioner(admin).apply(specs(caseload_id))
    db = admin.db(caseload_db(caseload_id))
    ddoc = db.get(MAIN_DDOC_ID)
    ddoc["views"]["conflicts"]["map"] = "function (doc) { emit(doc._id); }"
    db.save(ddoc)  # the version stamp still claims to be current

    [plan] = Provisioner(admin).apply(specs(caseload_id))
    assert plan.actions == ["upgrade"]
    assert db.get(MAIN_DDOC_ID)["views"] == assemble()[MAIN_DDOC_ID]["views"]


def test_design_doc_removed_from_the_couch_dir_is_removed(
        admin: CouchClient, caseload_ids: IdFactory, couch_dir: Path) -> None:
    caseload_id = caseload_ids()
    extra = couch_dir / "design_docs" / "extra" / "views" / "all"
    extra.mkdir(parents=True)
    (extra / "map.js").write_text("function (doc) { emit(doc._id); }\n")
    Provisioner(admin, couch_dir=couch_dir).apply(specs(caseload_id))
    db = admin.db(caseload_db(caseload_id))
    assert set(db.design_docs()) == {MAIN_DDOC_ID, "_design/extra"}
    db.put({"_id": "_design/mine", "views": {}})  # someone's own: not carecouch's to remove

    (extra / "map.js").unlink()
    extra.rmdir()
    (extra.parent).rmdir()
    (extra.parent.parent).rmdir()
    [plan] = Provisioner(admin, couch_dir=couch_dir).apply(specs(caseload_id))
    assert plan.actions == ["upgrade"]
    assert set(db.design_docs()) == {MAIN_DDOC_ID, "_design/mine"}
    registry = registry_record(admin, caseload_id)
    assert registry is not None and set(registry["design_docs"]) == {MAIN_DDOC_ID}


def test_a_failed_caseload_is_named_and_finished_by_a_rerun(
        admin: CouchClient, caseload_ids: IdFactory) -> None:
    first, second = caseload_ids(), caseload_ids()
    Provisioner(admin).apply(specs(first, second))
    provisioner = Provisioner(admin)
    changed = [CaseloadSpec(i, "Renamed", None) for i in (first, second)]
    plans = provisioner.apply(changed, dry_run=True)
    record = registry_record(admin, second)
    assert record is not None
    admin.db(REGISTRY_DB).save({**record, "team": "someone else"})  # a concurrent change

    with pytest.raises(ProvisioningFailed) as info:
        provisioner.execute(plans)
    assert str(info.value).startswith(f"caseload {second} failed ({second}: conflict")
    assert str(info.value).endswith("re-run the command to finish: every step is safe to "
                                    "repeat")
    assert registry_record(admin, first)["name"] == "Renamed"  # type: ignore[index]

    Provisioner(admin).apply(changed)
    assert registry_record(admin, second)["name"] == "Renamed"  # type: ignore[index]


def test_archive_leaves_design_docs_alone(admin: CouchClient, caseload_ids: IdFactory,
                                          couch_dir: Path) -> None:
    caseload_id = caseload_ids()
    Provisioner(admin).apply(specs(caseload_id))
    old = admin.db(caseload_db(caseload_id)).get(MAIN_DDOC_ID)
    (couch_dir / "design_docs" / "carecouch" / "filters").mkdir(exist_ok=True)
    (couch_dir / "design_docs" / "carecouch" / "filters" / "all.js").write_text(
        "function (doc, req) { return true; }\n")
    plan = Provisioner(admin, couch_dir=couch_dir).archive(caseload_id)
    assert plan.actions == ["archive"]
    assert admin.db(caseload_db(caseload_id)).get(MAIN_DDOC_ID)["_rev"] == old["_rev"]
    record = registry_record(admin, caseload_id)
    assert record is not None
    assert record["design_docs"] == {MAIN_DDOC_ID: stamped_version(old)}
    # Unarchiving brings it up to date before members are let back in.
    plan = Provisioner(admin, couch_dir=couch_dir).unarchive(caseload_id)
    assert plan.actions == ["unarchive", "upgrade"]
    assert [kind for kind, _ in plan.steps] == ["ddoc", "security"]


def test_system_databases_are_admin_only(admin: CouchClient, caseload_ids: IdFactory,
                                         make_user: Callable[..., User]) -> None:
    Provisioner(admin).apply(specs(caseload_ids()))
    outsider = make_user(roles=[])
    for name in (REGISTRY_DB, "carecouch_audit"):
        assert same_security(admin.db(name).get_security(), admin_only())
        with pytest.raises(CouchError) as info:
            outsider.client.db(name).info()
        assert info.value.status == 403


def test_ensure_admin_only_db_creates_then_only_repairs(admin: CouchClient) -> None:
    name = unique_name("test_sys_")
    try:
        assert ensure_admin_only_db(admin, name) is True
        assert admin.db(name).get_security() == admin_only()
        assert ensure_admin_only_db(admin, name) is False
        admin.db(name).put_security({"members": {"roles": ["someone"]}})
        assert ensure_admin_only_db(admin, name) is True
        assert admin.db(name).get_security() == admin_only()
    finally:
        admin.db(name).destroy(missing_ok=True)


def test_registry_reads_all_caseloads_in_one_request(fresh_client: CouchClient,
                                                     caseload_ids: IdFactory) -> None:
    ids = [caseload_ids() for _ in range(2)]
    Provisioner(fresh_client).apply(specs(*ids))
    fresh_client.request_counts.clear()
    records = CaseloadRegistry(fresh_client).caseloads()
    assert set(ids) <= set(records)
    assert sum(fresh_client.request_counts.values()) == 1


def test_recorded_caseload_whose_database_vanished_is_recreated(
        admin: CouchClient, caseload_ids: IdFactory) -> None:
    caseload_id = caseload_ids()
    Provisioner(admin).apply(specs(caseload_id))
    admin.db(caseload_db(caseload_id)).destroy()  # deleted behind carecouch's back

    [plan] = Provisioner(admin).apply(specs(caseload_id))
    assert plan.actions == ["create"]
    assert plan.events[0].details["missing_db"] is True
    assert admin.db(caseload_db(caseload_id)).get_security() == caseload_security(caseload_id)
    assert MAIN_DDOC_ID in admin.db(caseload_db(caseload_id)).design_docs()
