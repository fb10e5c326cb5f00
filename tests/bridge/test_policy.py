"""The policy file: refused with the line and the reason, evaluated as IT means it, and the CLI
that checks and explains it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from carecouch.policy import Policy, PolicyError, load_policy, parse_policy
from carecouch.records import load_registry
from tests.helpers.bridges import World

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = load_registry()
BASE = """\
version: 1
rules:
  - name: nurses
    groups: [nurses]
    clinical_roles: [nurse]
    teams: [district]
"""
CASELOADS: dict[str, dict[str, Any]] = {
    "north": {"id": "north", "team": "district", "status": "active"},
    "south": {"id": "south", "team": "district", "status": "active"},
    "old": {"id": "old", "team": "district", "status": "archived"},
    "school": {"id": "school", "team": "schools", "status": "active"},
}


def parse(text: str) -> Policy:
    return parse_policy(text, "policy.yaml", REGISTRY)


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("version: 1\nrules: [\n", 3, "not valid YAML"),
    ("", None, "the policy file is empty"),
    ("version: 2\nrules: []\n", 1, "version must be 1"),
    ("version: 1\n", 1, "'rules' is required"),
    ("version: 1\nrules: []\n", 2, "rules must be a non-empty list"),
    ("version: 1\nrulez: []\nrules: []\n", 2, "unknown key 'rulez'"),
    (BASE + "    clinical_roles: [nurse]\n", 7, "key 'clinical_roles' given twice"),
    (BASE.replace("[nurse]", "[surgeon]"), 5, "unknown clinical role 'surgeon'"),
    (BASE + "    record_types: [observation, xray]\n", 7, "unknown record type 'xray'"),
    (BASE + "    record_types: [order_signoff]\n", 7, "its roles cannot write order_signoff"),
    (BASE + "    caseloads: [North_1]\n", 7, "bad caseload id 'North_1'"),
    (BASE + "    credential_lifetime: 8 hours\n", 7, "must be a duration such as"),
    (BASE + "    credential_lifetime: 100d\n", 7, "between 1s and 90d"),
    (BASE + "    resolver: maybe\n", 7, "resolver must be true or false"),
    (BASE + "    filter: {types: [observation], window: 3d}\n", 7, "unknown key 'window'"),
    (BASE + "    filter: {pinned_subjects: ['Jane Doe']}\n", 7, "bad patient id 'Jane Doe'"),
    (BASE + "  - name: nurses\n    users: [x]\n", 7, "rule name 'nurses' is used twice"),
    (BASE + "  - name: nobody\n    clinical_roles: [hca]\n", 7, "names no users and no groups"),
    (BASE + "    users: ['alice~tablet']\n", 7, "bad user id 'alice~tablet'"),
    (BASE + "    users: [bob, bob]\n", 7, "'bob' is listed twice"),
    ("version: 1\nbreak_glass: {groups: [a], lifetime: 2d}\nrules: []\n", 2,
     "between 1s and 1d"),
    ("- just\n- a list\n", 1, "the policy must be a mapping"),
    (BASE + "    max_documents: lots\n", 7, "max_documents must be a number, or a size"),
    (BASE + "    max_documents: 0\n", 7, "max_documents must be at least 1"),
    (BASE + "    max_bytes: 2 TB\n", 7, "max_bytes must be a number, or a size"),
    (BASE + "    filter: {attachment_retention: soon}\n", 7, "must be a duration such as"),
])
def test_a_bad_policy_is_refused_with_its_line(text: str, line: int | None,
                                                reason: str) -> None:
    with pytest.raises(PolicyError) as info:
        parse(text)
    assert info.value.line == line, str(info.value)
    assert reason in info.value.reason, str(info.value)
    where = f"policy.yaml:{line}: " if line else "policy.yaml: "
    assert str(info.value).startswith(where)


def test_the_example_policy_is_good() -> None:
    policy = load_policy(ROOT / "examples" / "policy.yaml")
    assert len(policy.rules) == 7 and policy.version


def test_caseloads_by_team_only_active_ones() -> None:
    grant = parse(BASE).evaluate("alice", ["nurses"], CASELOADS)
    assert list(grant.caseloads) == ["north", "south"]
    assert grant.caseloads["north"].reasons == ("rule 'nurses' (line 3): team district",)
    assert grant.couch_roles() == ["caseload:north", "clinical:nurse@north",
                                   "caseload:south", "clinical:nurse@south"]
    assert not grant.narrowed


def test_an_explicit_caseload_that_is_archived_is_explained_not_granted() -> None:
    grant = parse(BASE + "    caseloads: [old, gone]\n").evaluate("a", ["nurses"], CASELOADS)
    assert "old" not in grant.caseloads and "gone" not in grant.caseloads
    assert any("caseload old is archived" in n for n in grant.notes)
    assert any("caseload gone does not exist" in n for n in grant.notes)


def test_narrowed_types_become_roles_the_server_enforces() -> None:
    text = BASE + "    record_types: [observation, care_plan]\n"
    grant = parse(text).evaluate("a", ["nurses"], CASELOADS)
    assert grant.narrowed and grant.record_types == ("care_plan", "observation")
    assert grant.couch_roles()[-3:] == ["carecouch:writes-restricted@south",
                                        "carecouch:writes:care_plan@south",
                                        "carecouch:writes:observation@south"]


def test_two_rules_combine_least_restrictively_for_filters_and_strictly_for_time() -> None:
    text = BASE + """\
    filter: {types: [observation], time_window: 7d}
    credential_lifetime: 4h
  - name: night shift
    users: [alice]
    clinical_roles: [hca]
    caseloads: [north]
    filter: {types: [task], time_window: 30d, pinned_subjects: [p-1]}
    credential_lifetime: 2h
"""
    grant = parse(text).evaluate("alice", ["nurses"], CASELOADS)
    north = grant.caseloads["north"].filter
    assert north.types == ("observation", "task") and north.time_window == 30 * 86400
    assert north.pinned_subjects == ("p-1",)
    assert grant.caseloads["south"].filter.types == ("observation",)
    assert grant.credential_lifetime == 2 * 3600  # the shortest lifetime any rule sets
    assert grant.clinical_roles == ("hca", "nurse") and not grant.narrowed


def test_roles_and_types_hold_in_the_caseloads_of_the_rule_that_grants_them() -> None:
    # A nurse on the district team who is also a prescriber on the school caseload: a
    # prescriber there, a nurse in the district, never the one in the other's caseloads.
    text = BASE + """\
  - name: school prescribing
    users: [alice]
    clinical_roles: [prescriber]
    caseloads: [school]
    record_types: [observation, order_signoff]
"""
    grant = parse(text).evaluate("alice", ["nurses"], CASELOADS)
    north, school = grant.caseloads["north"], grant.caseloads["school"]
    assert north.clinical_roles == ("nurse",) and school.clinical_roles == ("prescriber",)
    assert "order_signoff" in school.record_types and "order_signoff" not in north.record_types
    assert "cd_check" in north.record_types and "cd_check" not in school.record_types
    assert school.narrowed and not north.narrowed
    roles = grant.couch_roles()
    assert "clinical:prescriber@school" in roles and "clinical:nurse@north" in roles
    assert not [r for r in roles if r.startswith("clinical:") and "@" not in r]
    assert "carecouch:writes-restricted@school" in roles
    assert not any(r.startswith("carecouch:writes") and r.endswith("@north") for r in roles)
    assert grant.notes == []  # nothing spreads any more, so nothing to warn about


def test_nobody_matching_gets_nothing() -> None:
    grant = parse(BASE).evaluate("mallory", ["visitors"], CASELOADS)
    assert not grant.any and grant.caseloads == {} and grant.couch_roles() == []


def test_policy_check_cli(run_cli: Callable[..., Result], tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(BASE)
    result = run_cli("policy", "check", str(good))
    assert result.exit_code == 0 and result.stdout.startswith(f"{good}: OK (version ")
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE.replace("[nurse]", "[surgeon]"))
    result = run_cli("policy", "check", str(bad))
    assert result.exit_code == 1
    assert result.stderr == f"error: {bad}:5: unknown clinical role 'surgeon' (the record-type " \
        "registry knows hca, nurse, paramedic, pharmacist, prescriber, supervisor, therapist)\n"
    assert run_cli("policy", "check", str(tmp_path / "missing.yaml")).exit_code == 2


def test_policy_explain_cli(run_cli: Callable[..., Result], world: World,
                            tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(world.policy())
    result = run_cli("policy", "explain", world.user("hca"), "--policy", str(policy))
    assert result.exit_code == 0, result.output
    assert "matching rules       school healthcare assistants\n" in result.stdout
    assert "record types         observation (narrowed below what the roles admit)\n" in \
        result.stdout
    assert f"caseload {world.caseloads['c']}: as hca, may write observation (narrowed)\n" \
        "  holds types observation, task; append-only records from the last 30d; pinned " \
        "patient-007\n" in result.stdout
    assert "  because rule 'school healthcare assistants' (line 18) lists it\n" in \
        result.stdout
    data = json.loads(run_cli("policy", "explain", world.user("nurse"), "--group",
                              world.group("nurses"), "--policy", str(policy), "--json").stdout)
    assert [c["id"] for c in data["caseloads"]] == [world.caseloads["a"], world.caseloads["b"]]
