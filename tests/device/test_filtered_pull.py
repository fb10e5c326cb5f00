"""Filtered pull with the filter the bridge hands out: a design-document filter with query
parameters, or a Mango selector (``filter=_selector``, CouchDB 2+)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from carecouch.couch import Database
from mobile_stub.device import Device
from mobile_stub.replication import ReplicationFilter

BY_TYPES = """function (doc, req) {
  var types = (req.query.types || '').split(',');
  return types.indexOf(doc.type) !== -1;
}"""


def fill(db: Database) -> None:
    db.put({"_id": "_design/devtest", "filters": {"by_types": BY_TYPES}})
    docs = [{"_id": f"{kind}:{i}", "type": kind, "subject": f"patient:{i}"}
            for kind in ("observation", "careplan", "billing") for i in range(5)]
    db.bulk_docs(docs)
    # An update, so the filtered feed also carries a document with a longer history.
    first = db.get("careplan:0")
    db.put({**first, "goals": ["walk"]})


@pytest.mark.parametrize("replication_filter", [
    ReplicationFilter.design("devtest/by_types", types="observation,careplan"),
    ReplicationFilter.mango({"type": {"$in": ["observation", "careplan"]}}),
], ids=["design", "selector"])
def test_filtered_pull_holds_only_what_the_filter_selects(
        replication_filter: ReplicationFilter, member_db: Database,
        make_device: Callable[..., Device]) -> None:
    fill(member_db)
    device = make_device(member_db, filter=replication_filter)
    report = device.sync(member_db.name)
    assert report.ok, report.message
    local = device.store.database(member_db.name)
    assert sorted(local.doc_ids()) == sorted(
        f"{kind}:{i}" for kind in ("observation", "careplan") for i in range(5))
    assert local.get("careplan:0", revs=True)["_revisions"]["start"] == 2
    # New matching and non-matching documents: only the matching one arrives.
    member_db.bulk_docs([{"_id": "observation:new", "type": "observation"},
                        {"_id": "billing:new", "type": "billing"}])
    assert device.sync(member_db.name).pull.docs_written == 1


def test_the_filter_round_trips_as_json() -> None:
    for value in (ReplicationFilter.design("carecouch/by_types", types="a,b"),
                  ReplicationFilter.mango({"type": "observation"})):
        assert ReplicationFilter.from_json(value.to_json()) == value
    with pytest.raises(ValueError):
        ReplicationFilter.design("no-slash")
    with pytest.raises(ValueError):
        ReplicationFilter.design("a/b", since="0")
