"""Conflicts of every record class, made the way the field makes them.

Most are made by replication: a clinician's device holds a replica of the caseload, edits it
offline, and replicates it back; the server's validation judges the replicated revisions as it
judges a device's. A replica here is a database of its own on the test server, filled and
emptied by the server's replicator (``POST /_replicate``) authenticated on the caseload's side
as the clinician. Duplicates and diverging creations are pushed directly (``_bulk_docs`` with
``new_edits=false``), as a device's retried push sends them.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from click.testing import Result

from carecouch.couch import Database, Doc
from tests.helpers.provisioned import Caseload, Person
from tests.helpers.records import (
    care_plan,
    completion,
    lease,
    leased_order,
    now,
    observation,
    push,
    put,
    read,
)
from tests.helpers.waiting import wait_until

REPLICAS: list[Database] = []  # destroyed after each test (conftest.py)


@dataclass
class Made:
    doc_id: str
    revs: list[str]  # the live leaves, in the order they were pushed


class Replica:
    """``person``'s device: a replica of the caseload that is edited while offline."""

    def __init__(self, caseload: Caseload, person: Person) -> None:
        self.caseload, self.person = caseload, person
        admin = caseload.db.client
        store = admin.db(f"replica_{uuid.uuid4().hex[:12]}")  # the device's own store
        store.create()
        store.put_security({"members": {"names": [person.account.name], "roles": []}})
        REPLICAS.append(store)
        self.db = person.account.client.db(store.name)

    def _replicate(self, source: Database, target: Database) -> Doc:
        # Sent by the admin (CouchDB lets only admins start replications), authenticated as
        # the clinician at both ends: the caseload's rules judge what the clinician pushes.
        account = self.person.account
        parts = urlsplit(self.caseload.db.client.url)
        netloc = f"{quote(account.name, safe='')}:{quote(account.password, safe='')}@" + (
            parts.netloc)
        urls = [urlunsplit((parts.scheme, netloc, f"/{db.path}", "", ""))
                for db in (source, target)]
        result: Doc = self.caseload.db.client.json("POST", "_replicate", json_body={
            "source": urls[0], "target": urls[1]})
        assert result.get("ok"), result
        return result

    def pull(self) -> Replica:
        """Sync from the server (online). The design documents stay behind (a member cannot
        write them), as on a device: only the server validates."""
        self._replicate(self.caseload.db, self.db)
        return self

    def push(self) -> None:
        """Sync to the server, as the clinician: the server's validation judges each write,
        and this replica's writes must all pass."""
        result = self._replicate(self.db, self.caseload.db)
        counts = result["history"][0]  # CouchDB's answer (tests/conformance/test_replicate.py)
        assert counts["doc_write_failures"] == 0 and counts["docs_written"], result

    def read(self, doc_id: str) -> Doc:
        return read(self.db, doc_id)

    def write(self, doc: Doc) -> str:
        """An edit on the device (the device's store does not validate; the server will)."""
        return put(self.db, doc, doc if "_rev" in doc else None)


def edit(doc: Doc, writer: Person, at: str | None = None, **fields: Any) -> Doc:
    """``doc`` with ``fields`` changed and stamped by ``writer`` at ``at``, as a device does."""
    when = at or now()
    out = {**doc, **fields, "author": writer.user, "device": writer.device, "at": when}
    out["changed"] = {**doc["changed"], **{name: {"by": writer.user, "at": when}
                                          for name in fields}}
    return out


def attached(name: str, data: bytes, content_type: str = "image/jpeg") -> Doc:
    """``_attachments`` holding one file, inline, as a device writes it."""
    return {name: {"content_type": content_type, "data": base64.b64encode(data).decode()}}


def mergeable(caseload: Caseload, a: Person, b: Person, *, a_at: str | None = None,
              b_at: str | None = None, photo: bytes | None = None,
              b_photo: bytes | None = None, **plan_fields: Any) -> Made:
    """A creates a care plan online (with a wound ``photo``); both devices replicate it;
    offline, A changes the title and B the goals and note (and retakes the photo:
    ``b_photo``); both replicate back."""
    plan = care_plan(a.user, a.device, **plan_fields)
    if photo is not None:
        plan["_attachments"] = attached("wound.jpg", photo)
    put(a.db(caseload), plan)
    on_a, on_b = Replica(caseload, a).pull(), Replica(caseload, b).pull()
    rev_a = on_a.write(edit(on_a.read(plan["_id"]), a, a_at, title="Venous ulcer, left leg"))
    b_edit = edit(on_b.read(plan["_id"]), b, b_at, goals=["heal within 8 weeks"],
                  note="compression tolerated")
    if b_photo is not None:
        b_edit["_attachments"] = attached("wound.jpg", b_photo)
    rev_b = on_b.write(b_edit)
    on_a.push()
    on_b.push()
    return Made(plan["_id"], [rev_a, rev_b])


def duplicate(caseload: Caseload, nurse: Person) -> Made:
    """An observation pushed twice: the device's retry after a lost answer made a new
    revision id for the same content."""
    obs = observation(nurse.user, nurse.device)
    first = push(nurse.db(caseload), obs)
    second = push(nurse.db(caseload), obs)
    return Made(obs["_id"], [first, second])


def diverged_observation(caseload: Caseload, a: Person, b: Person) -> Made:
    """The same observation id created twice with different values: A's device, restored
    from a backup, re-created it with a corrected pulse. (Only its owner can: another
    account's revision of it is refused, append_only.not_owner; ``b`` plays no part.)"""
    obs = observation(a.user, a.device)
    first = push(a.db(caseload), obs)
    second = push(a.db(caseload), {**obs, "pulse": 92, "news2": 1})  # pulse 91-110: 1
    return Made(obs["_id"], [first, second])


def exclusive(caseload: Caseload, bridge_account: Person, a: Person, b: Person) -> Made:
    """The lease race (docs/record-rules.md): A's tablet replicates the order A holds a lease
    on, and A signs it offline inside the lease; the lease expires, the bridge grants the
    order to B, who signs online; then A's tablet replicates back."""
    order = leased_order(caseload, bridge_account, a, minutes=30, start=-90)
    tablet = Replica(caseload, a).pull()
    a_rev = tablet.write(completion(tablet.read(order["_id"]), a, completed_at=now(-70)))
    regranted = put(bridge_account.db(caseload), {**order, "lease": lease(b.user, b.device)}, order)
    put(b.db(caseload), completion(read(caseload.db, order["_id"], regranted), b),
        {"_rev": regranted})
    b_rev = read(caseload.db, order["_id"])["_rev"]
    tablet.push()
    return Made(order["_id"], [b_rev, a_rev])


def resolutions(db: Database) -> list[Doc]:
    rows = db.all_docs(startkey="resolution:", endkey="resolution:\ufff0",
                       include_docs=True)["rows"]
    return [r["doc"] for r in rows]


def body(doc: Doc) -> Doc:
    """What a clinician wrote: the document without revision metadata."""
    return {k: v for k, v in doc.items() if k not in ("_rev", "_revisions")}


def bodies(leaves: dict[str, Doc]) -> list[str]:
    """What the leaves hold, comparable whatever their revision ids and order."""
    return sorted(json.dumps(body(doc), sort_keys=True) for doc in leaves.values())


def merged_by_hand(cli: Callable[..., Any], caseload: Caseload, made: Made
                   ) -> tuple[dict[str, Doc], str]:
    """The leaves before, and the resolution that merged them (goals from the first branch)."""
    before = live(caseload.db, made.doc_id)
    merged = cli("conflicts", "resolve", made.doc_id, "--caseload", caseload.id, "--merge",
                 f"goals={made.revs[0]}", "--reason", "x", "--yes", "--json")
    assert merged.exit_code == 0, merged.stderr
    return before, str(json.loads(merged.stdout)["resolution"])


def live(db: Database, doc_id: str) -> dict[str, Doc]:
    """The live leaves of a document, by revision."""
    return {r["ok"]["_rev"]: r["ok"] for r in db.leaf_revisions(doc_id)
            if isinstance(r.get("ok"), dict) and not r["ok"].get("_deleted")}


def compact(db: Database, doc_id: str, gone: str, timeout: float = 60) -> None:
    """Compact and wait until revision ``gone``'s body is no longer held."""
    db.compact()
    wait_until(lambda: all("missing" in r for r in db.open_revs(doc_id, [gone])),
               timeout=timeout, interval=0.2, what=f"compaction removed {doc_id} {gone}")


Factory = Callable[..., Person]
# ``cli("conflicts", "list", user=..., input=...)``: the carecouch command (conftest.py).
Cli = Callable[..., Result]


def completed_beside_a_regrant(caseload: Caseload, bridge_account: Person, a: Person, b: Person
                               ) -> tuple[Made, Doc]:
    """What a cluster can leave behind (docs/record-rules.md, "On a cluster"): A completes
    the order, and a copy that had not yet received A's completion accepts the bridge's
    re-grant of the revision before it to B; internal replication then spreads both. The
    re-grant is pushed here as internal replication writes it: as an admin, with its history.
    Returns the conflict and B's leased branch (B's device holds it with a lease token)."""
    order = leased_order(caseload, bridge_account, a, minutes=30, start=-20)
    a_rev = put(a.db(caseload), completion(order, a), order)
    regrant = {**order, "lease": lease(b.user, b.device)}
    b_rev = push(caseload.db, regrant, order)
    return Made(order["_id"], [a_rev, b_rev]), read(caseload.db, order["_id"], b_rev)
