"""Benchmark: what the clinical record rules cost on writes, beside what validation itself costs.

Three caseloads on the same server, provisioned alike; their design document differs only in
``validate_doc_update``:

- **the rules**: the shipped ``validate_doc_update``;
- **trivial**: ``function (newDoc, oldDoc, userCtx, secObj) {}`` in its place: the cost of the
  mechanism alone (on CouchDB every document then goes to the JavaScript engine and back);
- **none**: no ``validate_doc_update`` at all (everything else, the lib modules included, kept).

A nurse bulk-writes ``--count`` observations into each (in ``_bulk_docs`` batches of
``--batch``), both as ordinary writes and as a device's push (``new_edits=false``). A run's
order used to decide the figures (the first caseload written paid for warming the server up),
so: every caseload first takes one untimed batch of each kind, then the batches alternate
between the caseloads, batch by batch, in one order and then the reverse (rules, trivial,
none; none, trivial, rules); each order's figures are reported apart, and together. Repeated
``--rounds`` times: medians with the range (min-max).

    .venv/bin/python benchmarks/validation_cost.py [--count 10000] [--batch 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time
import uuid

from support import DesignProvisioner, couch_server, spread, with_validation

from carecouch import ddocs
from carecouch.couch import CouchClient, Database, Doc
from carecouch.ids import caseload_db, member_role, registry_doc_id
from carecouch.registry import REGISTRY_DB

NURSE = "bench-nurse"
DEVICE = "tablet-1"
TRIVIAL = "function (newDoc, oldDoc, userCtx, secObj) {}"
RULES, TRIVIAL_CASE, NONE = "the rules", "trivial function(){}", "no validate_doc_update"
CASES = (RULES, TRIVIAL_CASE, NONE)
ORDERS = {"forward": CASES, "reverse": tuple(reversed(CASES))}


def design_docs(case: str) -> dict[str, Doc]:
    """The shipped design documents, with ``validate_doc_update`` as ``case`` wants it."""
    if case == RULES:
        return ddocs.assemble()
    return with_validation(TRIVIAL if case == TRIVIAL_CASE else None)


def observation(n: int) -> Doc:
    return {"_id": f"observation:{NURSE}~{DEVICE}:{uuid.uuid4()}", "type": "observation",
            "subject": f"patient-{n % 500:04d}", "author": NURSE, "device": DEVICE,
            "at": "2026-11-22T09:30:00.000Z", "clock_offset_ms": -420,
            "respiration_rate": 18, "spo2": 96, "spo2_scale": 1, "on_oxygen": False,
            "systolic_bp": 128, "pulse": 84, "consciousness": "A", "temperature": 37.2,
            "news2": 0}


def as_pushed(doc: Doc) -> Doc:
    rev = uuid.uuid4().hex
    return {**doc, "_rev": f"1-{rev}", "_revisions": {"start": 1, "ids": [rev]}}


def batch_of(count: int, push: bool) -> list[Doc]:
    docs = [observation(n) for n in range(count)]
    return [as_pushed(d) for d in docs] if push else docs


def write(db: Database, docs: list[Doc], push: bool) -> float:
    started = time.perf_counter()
    result = db.bulk_docs(docs, new_edits=not push)
    elapsed = time.perf_counter() - started
    failed = [r for r in result if r.get("error")]
    if failed:
        raise SystemExit(f"a write was refused: {failed[0]}")
    return elapsed


# (mode, order, case) -> seconds, for one round
Times = dict[tuple[bool, str, str], float]


def one_round(dbs: dict[str, Database], count: int, batch: int) -> Times:
    """Every caseload gets ``count`` documents of each kind; the batches alternate between
    the caseloads, the order reversed for every other batch."""
    times: Times = {}
    for push in (False, True):
        batches = -(-count // batch)
        for index in range(batches):
            order = "forward" if index % 2 == 0 else "reverse"
            size = min(batch, count - index * batch)
            for case in ORDERS[order]:
                key = (push, order, case)
                times[key] = times.get(key, 0.0) + write(dbs[case], batch_of(size, push), push)
    return times


def warm_up(dbs: dict[str, Database], batch: int) -> None:
    for push in (False, True):
        for case in CASES:
            write(dbs[case], batch_of(batch, push), push)


def report(rounds: list[Times], count: int, batch: int) -> None:
    def total(times: Times, push: bool, case: str, orders: tuple[str, ...]) -> float:
        return sum(times.get((push, order, case), 0.0) for order in orders)

    batches = -(-count // batch)
    halves = {"forward": (batches + 1) // 2, "reverse": batches // 2}
    print(f"\n{len(rounds)} rounds; median (min-max) over the rounds")
    for push in (False, True):
        print("device push (new_edits=false):" if push else "ordinary _bulk_docs:")
        both = ("forward", "reverse")
        for case in CASES:
            seconds = [total(t, push, case, both) for t in rounds]
            rates = [count / s for s in seconds]
            print(f"  {case:24} {spread(seconds):>22}   {spread(rates, 0, ' docs/s')}")
        for orders, label in ((both, "both orders"), (("forward",), "rules written first"),
                              (("reverse",), "rules written last")):
            if any(halves[o] == 0 for o in orders):
                continue
            none = [total(t, push, NONE, orders) for t in rounds]
            rules = [total(t, push, RULES, orders) / n for t, n in zip(rounds, none, strict=True)]
            trivial = [total(t, push, TRIVIAL_CASE, orders) / n
                       for t, n in zip(rounds, none, strict=True)]
            added = [r / t for r, t in zip(rules, trivial, strict=True)]
            print(f"  {label:20} ({sum(halves[o] for o in orders)} batches): the rules "
                  f"x{spread(rules, unit='')}, trivial x{spread(trivial, unit='')} of none;"
                  f" the rules x{spread(added, unit='')} of trivial")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with couch_server() as (url, user, password, where):
        print(f"server: {where}; per round, {args.count} observations into each caseload in "
              f"batches of {args.batch}, each way (ordinary writes, then pushed)")
        admin = CouchClient(url, user, password)
        ids = {case: f"bench{uuid.uuid4().hex[:8]}" for case in CASES}
        name = f"{NURSE}~{DEVICE}"
        secret = uuid.uuid4().hex
        admin.db("_users").put({"_id": f"org.couchdb.user:{name}", "name": name,
                                "type": "user", "password": secret,
                                "roles": ["clinical:nurse", *map(member_role, ids.values())]})
        nurse = CouchClient(url, name, secret)
        try:
            for case in CASES:
                DesignProvisioner(admin, design_docs(case)).create(ids[case])
                main_ddoc = admin.db(caseload_db(ids[case])).get(ddocs.MAIN_DDOC_ID)
                vdu = main_ddoc.get("validate_doc_update")
                print(f"  {case:24} caseload {ids[case]}: validate_doc_update "
                      f"{'absent' if vdu is None else f'of {len(vdu)} characters'}; "
                      f"lib modules {sorted(main_ddoc.get('lib', {}))}")
            print(f"  written as {name} (clinical:nurse, member of all three); each caseload "
                  f"first takes {args.batch} untimed documents of each kind (warm-up)")
            dbs = {case: nurse.db(caseload_db(ids[case])) for case in CASES}
            warm_up(dbs, args.batch)
            rounds: list[Times] = []
            for round_ in range(args.rounds):
                rounds.append(one_round(dbs, args.count, args.batch))
                print(f"round {round_ + 1}/{args.rounds} done")
            report(rounds, args.count, args.batch)
        finally:
            cleanup(admin, list(ids.values()), name)
            nurse.close()
            admin.close()


def remove(db: Database, doc_id: str) -> None:
    doc = db.get_or_none(doc_id)
    if doc is not None:
        db.delete(doc_id, doc["_rev"])


def cleanup(admin: CouchClient, ids: list[str], user: str) -> None:
    for caseload_id in ids:
        admin.db(caseload_db(caseload_id)).destroy(missing_ok=True)
        remove(admin.db(REGISTRY_DB), registry_doc_id(caseload_id))
    remove(admin.db("_users"), f"org.couchdb.user:{user}")


if __name__ == "__main__":
    main()
