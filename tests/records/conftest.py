"""Fixtures of the record-rule tests; the caseload and its people are
tests/helpers/provisioned.py's (registered in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.helpers.provisioned import Caseload
from tests.helpers.records import Write, checked_on_device, push, put, settled


@pytest.fixture(params=["put", "push", "device"])
def write(request: pytest.FixtureRequest, caseload: Caseload) -> Write:
    """Every rule is checked through an ordinary write, a device's push, and the device's own
    check before it saves (the same rules, run on the device: it must agree with the server on
    every case), as the server finally judges each: on one copy its first answer; on a cluster
    the answer its copies agree on once each holds what was written before
    (tests/helpers/records.py, settled)."""
    copies = caseload.db.copies()
    if request.param == "device":
        pushed = settled(copies, push, caseload.db)
        return lambda db, doc, parent=None: checked_on_device(db, doc, parent, pushed_by=pushed)
    return settled(copies, put if request.param == "put" else push, caseload.db)
