"""The access matrix: with credentials the bridge issued, every way of reading or writing each
caseload succeeds exactly where the policy allows, over real HTTP with real CouchDB users.

The policy (tests/helpers/bridges.py): ward nurses get caseloads a and b (by team), the school
HCA gets c with writes narrowed to observations, prescribers get a, the reviewer (supervisor,
resolver) gets c; "dual" is a ward nurse who also works bank shifts as a healthcare assistant
on c: a nurse in a and b, an HCA in c (roles hold per caseload); nobody gets d. The expected
statuses are CouchDB 3.5's (tests/conformance/test_security.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from carecouch.couch import CouchClient, Doc, doc_path
from carecouch.records import refusal_code
from tests.helpers.bridges import BridgeServer, World
from tests.helpers.protocol import NOT_ALLOWED, call, replicated, rev_hash
from tests.helpers.records import administration, care_plan, envelope, now, observation

PEOPLE = {  # person -> (user role, groups, caseloads the policy grants)
    "nurse": ("nurse", ["nurses"], {"a", "b"}),
    "hca": ("hca", [], {"c"}),
    "prescriber": ("prescriber", ["prescribers"], {"a"}),
    "reviewer": ("reviewer", [], {"c"}),
    "dual": ("dual", ["nurses"], {"a", "b", "c"}),
}
# What each may write where they are members: None = allowed, else the refusing rule.
ROLE = "auth.role_required"
WRITES = {
    "nurse": {"observation": None, "administration": None, "progress_note": None,
              "task": None, "consent": None, "care_plan": None},
    "hca": {"observation": None, "administration": ROLE,
            "progress_note": "auth.type_not_granted", "task": "auth.type_not_granted",
            "consent": ROLE, "care_plan": ROLE},
    "prescriber": {"observation": None, "administration": None, "progress_note": None,
                   "task": None, "consent": None, "care_plan": None},
    "reviewer": {"observation": ROLE, "administration": ROLE, "progress_note": None,
                 "task": None, "consent": ROLE, "care_plan": None},
    "dual": {"observation": None, "administration": None, "progress_note": None,
             "task": None, "consent": None, "care_plan": None},
}
# Where a person's roles differ by caseload: (person, caseload) -> what they may write there.
# Before roles were scoped, the nurse role reached c as well and these administrations were
# stored.
WRITES_IN = {
    ("dual", "c"): {"observation": None, "administration": ROLE, "progress_note": None,
                    "task": None, "consent": ROLE, "care_plan": ROLE},
}
NOT_DB_ADMIN = {"error": "forbidden", "reason": "You are not a db or server admin."}
SEED = "observation:00000000-0000-4000-8000-000000000001"

READS: list[tuple[str, str, Any]] = [
    ("GET", "", None),
    ("GET", "/" + doc_path(SEED), None),
    ("GET", "/_all_docs", None),
    ("POST", "/_all_docs", {"keys": [SEED]}),
    ("GET", "/_changes", None),
    ("GET", "/_changes?filter=carecouch/device&types=observation", None),
    ("POST", "/_changes?filter=_selector", {"selector": {"type": "observation"}}),
    ("POST", "/_bulk_get", {"docs": [{"id": SEED}]}),
    ("POST", "/_find", {"selector": {"type": "observation"}}),
    ("POST", "/_revs_diff", {SEED: ["1-" + "0" * 32]}),
    ("GET", "/_design/carecouch", None),
    ("GET", "/_security", None),
    ("GET", "/_local/seed-checkpoint", None),
]


@dataclass
class Session:
    person: str
    user: str
    device: str
    client: CouchClient
    granted: set[str]


@pytest.fixture(scope="module")
def seeded(world: World) -> World:
    for caseload_id in world.caseloads.values():
        db = world.admin.db(f"caseload_{caseload_id}")
        if db.get_or_none(SEED) is None:
            db.put({**observation("seed", "seed-device"), "_id": SEED})  # admin: on behalf
        db.put_local("seed-checkpoint", {"last_seq": "0"})
    return world


@pytest.fixture(scope="module")
def sessions(bridge: BridgeServer, seeded: World,
             server: Any) -> Iterator[dict[str, Session]]:
    found = {}
    for person, (role, groups, letters) in PEOPLE.items():
        device = bridge.enrolled_device(seeded.user(role), [seeded.group(g) for g in groups])
        body = device.credentials()
        assert {d["caseload"] for d in body["databases"]} == {seeded.caseloads[x]
                                                             for x in letters}
        client = CouchClient(server.url, body["username"], body["password"], retries=0)
        found[person] = Session(person, seeded.user(role), device.device_id, client, letters)
    yield found
    for session in found.values():
        session.client.close()


def _db(world: World, letter: str) -> str:
    return f"caseload_{world.caseloads[letter]}"


def _request(client: CouchClient, method: str, path: str, body: Any) -> tuple[int, Any]:
    path, _, query = path.partition("?")
    params = dict(part.split("=", 1) for part in query.split("&")) if query else None
    return call(client, method, path, params=params, body=body)


CASES = [(p, c) for p in PEOPLE for c in "abcd"]
IDS = [f"{p}-{c}" for p, c in CASES]


@pytest.mark.parametrize(("person", "letter"), CASES, ids=IDS)
@pytest.mark.parametrize(("method", "suffix", "body"), READS,
                         ids=[f"{m} {s or '/'}" for m, s, _ in READS])
def test_reads(sessions: dict[str, Session], seeded: World, person: str, letter: str,
               method: str, suffix: str, body: Any) -> None:
    session = sessions[person]
    status, answer = _request(session.client, method, _db(seeded, letter) + suffix, body)
    if letter in session.granted:
        assert status == 200, answer
    else:
        assert (status, answer) == (403, NOT_ALLOWED)


def _record(record_type: str, user: str, device: str) -> Doc:
    if record_type == "observation":
        return observation(user, device)
    if record_type == "administration":
        return administration(user, device)
    if record_type == "progress_note":
        return envelope("progress_note", user, device, text="Visited; wound dressed.")
    if record_type == "consent":
        return envelope("consent", user, device, decision="given", scope="wound care",
                        capacity_assessed=True, given_by="patient")
    if record_type == "care_plan":
        return care_plan(user, device)
    return envelope("task", user, device, title="Order dressings",
                    changed={"title": {"by": user, "at": now()}})


TYPES = ["observation", "administration", "progress_note", "task", "consent", "care_plan"]


@pytest.mark.parametrize(("person", "letter"), CASES, ids=IDS)
@pytest.mark.parametrize("record_type", TYPES)
@pytest.mark.parametrize("how", ["put", "replicated"])
def test_record_writes(sessions: dict[str, Session], seeded: World, person: str, letter: str,
                       record_type: str, how: str) -> None:
    session = sessions[person]
    doc = _record(record_type, session.user, session.device)
    db = _db(seeded, letter)
    if how == "put":
        status, answer = call(session.client, "PUT", f"{db}/{doc_path(doc['_id'])}", body=doc)
    else:
        status, answer = call(session.client, "POST", f"{db}/_bulk_docs", body={
            "new_edits": False, "docs": [replicated(doc["_id"], 1, [rev_hash()], **{
                k: v for k, v in doc.items() if k != "_id"})]})
        if status == 201:  # per-document outcome of a replicated write
            status, answer = (403, answer[0]) if answer else (201, answer)
    if letter not in session.granted:
        assert (status, answer) == (403, NOT_ALLOWED)
        return
    refusal = WRITES_IN.get((person, letter), WRITES[person])[record_type]
    if refusal is None:
        assert status == 201, answer
        assert seeded.admin.db(db).get(doc["_id"])["author"] == session.user
    else:
        assert status == 403 and answer["error"] == "forbidden", answer
        assert refusal_code(answer["reason"]) == refusal


WRITE_ROUTES: list[tuple[str, str, Callable[[], Any]]] = [
    ("PUT", "/_design/mine", lambda: {"views": {"v": {"map": "function (doc) {}"}}}),
    ("POST", "/_bulk_docs", lambda: {"new_edits": False, "docs": [
        replicated("_design/x", 1, [rev_hash()])]}),
    ("PUT", "/_security", lambda: {"members": {"roles": ["caseload:elsewhere"]}}),
    ("PUT", "/_local/device-checkpoint", lambda: {"last_seq": "7"}),
]


@pytest.mark.parametrize(("person", "letter"), CASES, ids=IDS)
@pytest.mark.parametrize(("method", "suffix", "body"), WRITE_ROUTES,
                         ids=[f"{m} {s}" for m, s, _ in WRITE_ROUTES])
def test_design_security_and_checkpoint_writes(
        sessions: dict[str, Session], seeded: World, person: str, letter: str, method: str,
        suffix: str, body: Callable[[], Any]) -> None:
    session = sessions[person]
    db = _db(seeded, letter)
    security = seeded.admin.db(db).get_security()
    if suffix.startswith("/_local/"):
        suffix += f"-{person}"  # each device keeps its own checkpoint
    status, answer = call(session.client, method, db + suffix, body=body())
    assert seeded.admin.db(db).get_security() == security  # never changed by a device
    if letter not in session.granted:
        assert (status, answer) == (403, NOT_ALLOWED)
    elif suffix == "/_design/mine":
        assert (status, answer) == (403, NOT_DB_ADMIN)
    elif suffix == "/_bulk_docs":
        assert status == 201 and answer[0]["error"] == "forbidden", answer
    elif suffix == "/_security":
        assert status >= 400  # CouchDB: 500 no_majority, nothing written
    else:
        assert status == 201, answer  # a device's replication checkpoint


def test_no_session_is_a_server_admin(sessions: dict[str, Session]) -> None:
    for session in sessions.values():
        assert call(session.client, "GET", "_all_dbs")[0] == 401
        roles = session.client.session()["userCtx"]["roles"]
        assert "_admin" not in roles and "carecouch:bridge" not in roles
