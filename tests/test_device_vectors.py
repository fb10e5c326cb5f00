"""The shared device vectors (tests/vectors/device_vectors.json) are what the Python code
computes today, and the reference device accepts and refuses exactly what they say. The
JavaScript device checks itself against the same file (clients/js/test/vectors.test.js), so
a format changed on one side only fails one of the two."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from carecouch.snapshot import LEASE_TYPE
from mobile_stub.errors import TokenRefused
from mobile_stub.snapshot import verify_snapshot
from mobile_stub.trust import PinnedKeys
from tests.vectors import device_vectors

VECTORS: dict[str, Any] = json.loads(device_vectors.FILE.read_text(encoding="utf-8"))
KEYS = PinnedKeys.from_jwks(VECTORS["bridge_jwks"])


def test_the_file_is_what_the_python_code_computes() -> None:
    assert device_vectors.FILE.read_text(encoding="utf-8") == device_vectors.render(), \
        "a wire format changed: regenerate with python -m tests.vectors.device_vectors " \
        "and make the JavaScript device (clients/js) agree"


def test_the_reference_device_trusts_the_snapshot_and_reads_it_as_the_vector_says() -> None:
    vector = VECTORS["snapshot"]
    snapshot = verify_snapshot(vector["token"], KEYS, vector["device"])
    parsed = vector["parsed"]
    assert (snapshot.user, snapshot.username) == (parsed["user"], parsed["username"])
    assert {db.name: {"caseload": db.caseload, "record_types": sorted(db.record_types),
                      "clinical_roles": list(db.clinical_roles)}
            for db in snapshot.databases} == parsed["databases"]


@pytest.mark.parametrize("vector", VECTORS["refused_snapshots"], ids=lambda v: v["name"])
def test_the_reference_device_refuses_each_bad_snapshot(vector: dict[str, Any]) -> None:
    with pytest.raises(TokenRefused, match=vector["why"]):
        verify_snapshot(vector["token"], KEYS, VECTORS["snapshot"]["device"])


def test_lease_tokens() -> None:
    assert KEYS.verify(VECTORS["lease"]["token"], LEASE_TYPE, "the lease") == \
        VECTORS["lease"]["claims"]
    for vector in VECTORS["refused_leases"]:
        with pytest.raises(TokenRefused, match=vector["why"]):
            KEYS.verify(vector["token"], LEASE_TYPE, "the lease")


def test_record_id_patterns_match_what_the_python_code_makes() -> None:
    from carecouch.records import load_registry, new_record_id

    ids = VECTORS["record_ids"]
    registry = load_registry()
    assert re.fullmatch(ids["append-only"], new_record_id(registry, "observation", ids["owner"]))
    assert re.fullmatch(ids["other"], new_record_id(registry, "care_plan", ids["owner"]))
