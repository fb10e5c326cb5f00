"""Provision caseload databases: observe what the server has, plan the difference, apply it.

Every command (create, apply, archive, unarchive) is the same three steps, so a re-run of any
of them reads, finds nothing to do, and writes nothing. Writes for one caseload go in an
order that leaves no half-written caseload a member can use, and that a re-run repairs:

1. create the database and at once make it admin-only (no member access yet);
2. install or upgrade its design documents (the validation rules come with them);
3. set the security object that opens it to members (or keeps it closed, when archived);
4. write the audit entry;
5. write the registry record, last: a caseload is "recorded" only when all of the above is
   done, and a caseload that is not recorded is finished by the next run.

The audit entry goes before the registry record so that a failure between them can at worst
repeat an entry on the re-run, never lose one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from . import ddocs
from .audit import AuditEvent, AuditLog
from .couch import CouchClient, Doc
from .errors import CarecouchError
from .ids import caseload_db, check_caseload_id
from .manifest import CaseloadSpec
from .parallel import DEFAULT_WORKERS, map_parallel
from .registry import CaseloadRegistry, CaseloadState, caseload_record, same_record
from .security import admin_only, caseload_security, same_security

Tick = Callable[[], None]


class CaseloadNotFound(CarecouchError):
    pass


class CaseloadExists(CarecouchError):
    pass


class ProvisioningFailed(CarecouchError):
    """Some caseloads could not be provisioned; ``failures`` maps each id to its error."""

    def __init__(self, failures: Mapping[str, str], total: int) -> None:
        first_id, first_error = next(iter(failures.items()))
        count = len(failures)
        what = f"caseload {first_id}" if count == 1 else f"{count} of {total} caseloads"
        super().__init__(f"{what} failed ({first_id}: {first_error}); re-run the command to "
                         "finish: every step is safe to repeat")
        self.failures = dict(failures)


@dataclass(frozen=True)
class Observed:
    """What the server holds for one caseload."""

    record: Doc | None  # registry document
    security: Doc | None  # None: the database does not exist
    design_docs: dict[str, Doc]

    @property
    def db_exists(self) -> bool:
        return self.security is not None

    @property
    def recorded(self) -> bool:
        """Finished provisioning at some point, and not destroyed since."""
        return self.record is not None and self.record.get("status") != CaseloadState.DESTROYED


@dataclass(frozen=True)
class Target:
    """What one caseload should be."""

    id: str
    name: str
    team: str | None
    status: str = CaseloadState.ACTIVE  # or CaseloadState.ARCHIVED
    sync_design: bool = True  # False: leave design documents as they are (archive)


@dataclass
class Plan:
    """The writes that bring one caseload from what was observed to its target, in order."""

    target: Target
    observed: Observed
    steps: list[tuple[str, Any]] = field(default_factory=list)  # ("create_db"|"security"|"ddoc")
    events: list[AuditEvent] = field(default_factory=list)
    record: Doc | None = None  # registry document to write
    note: str | None = None  # why nothing is planned, when it is not the obvious "unchanged"

    @property
    def id(self) -> str:
        return self.target.id

    @property
    def changed(self) -> bool:
        return bool(self.steps or self.events or self.record)

    @property
    def actions(self) -> list[str]:
        """Short names of what the plan does, for tables and ``--json``."""
        names = [e.action.removeprefix("caseload.") for e in self.events]
        if self.record is not None and not names:
            names.append("record")
        return names


@dataclass(frozen=True)
class Destroyed:
    id: str
    db: str
    doc_count: int | None  # None: the database was already gone
    changed: bool


def _status(seen: Observed) -> str:
    """The status a manifest run keeps: archived stays archived, anything else is active."""
    if (seen.recorded and seen.record is not None
            and seen.record.get("status") == CaseloadState.ARCHIVED):
        return CaseloadState.ARCHIVED
    return CaseloadState.ACTIVE


def default_actor(client: CouchClient) -> str:
    return client.user or "anonymous"


class Provisioner:
    """Caseload provisioning on one server, as one admin (the audit ``actor``)."""

    def __init__(self, client: CouchClient, *, couch_dir: Path | None = None,
                 actor: str | None = None, workers: int = DEFAULT_WORKERS) -> None:
        self.client = client
        self.registry = CaseloadRegistry(client)
        self.audit = AuditLog(client, actor or default_actor(client))
        self.workers = workers
        self.couch_dir = couch_dir

    @cached_property
    def desired(self) -> dict[str, Doc]:
        """The design documents every caseload should carry (read when first needed, so
        archive and destroy work without the couch directory)."""
        return ddocs.assemble(self.couch_dir)

    @property
    def design_versions(self) -> dict[str, str]:
        return {ddoc_id: str(ddocs.stamped_version(doc))
                for ddoc_id, doc in self.desired.items()}

    # -- observe ----------------------------------------------------------------------------

    def observe(self, ids: Sequence[str], *, tick: Tick | None = None) -> dict[str, Observed]:
        """Read the registry once, then each caseload database's security and design docs."""
        records = self.registry.caseloads()

        def read(caseload_id: str) -> Observed:
            db = self.client.db(caseload_db(caseload_id))
            security = db.security_or_none()  # doubles as the existence check
            design = db.design_docs() if security is not None else {}
            return Observed(records.get(caseload_id), security, design)

        results = map_parallel(read, list(ids), workers=self.workers, tick=tick)
        observed: dict[str, Observed] = {}
        for caseload_id, result in zip(ids, results, strict=True):
            if isinstance(result, CarecouchError):
                raise result  # reading failed: nothing was written, nothing to report per id
            observed[caseload_id] = result
        return observed

    # -- plan -------------------------------------------------------------------------------

    def plan(self, target: Target, observed: Observed) -> Plan:
        plan = Plan(target, observed)
        record = observed.record
        wanted_security = caseload_security(target.id,
                                            archived=target.status == CaseloadState.ARCHIVED)
        ddoc_writes = self._design_writes(observed) if target.sync_design else []
        if target.sync_design or record is None:
            versions = self.design_versions
        else:
            versions = dict(record.get("design_docs") or {})

        current = observed.security
        if current is None:
            plan.steps.append(("create_db", None))
            current = {}
        # A caseload not yet recorded gets its rules before anyone can write to it.
        if current == {} or (ddoc_writes and not observed.recorded
                             and not same_security(current, admin_only())):
            plan.steps.append(("security", admin_only()))
            current = admin_only()
        plan.steps.extend(("ddoc", doc) for doc in ddoc_writes)
        security_changed = not same_security(current, wanted_security)
        if security_changed:
            plan.steps.append(("security", wanted_security))

        plan.record = caseload_record(target.id, name=target.name, team=target.team,
                                      status=target.status, design_docs=versions,
                                      previous=record)
        if same_record(record, plan.record):
            plan.record = None
        plan.events = self._events(target, observed, versions, ddoc_writes, security_changed,
                                   wanted_security)
        return plan

    def _design_writes(self, observed: Observed) -> list[Doc]:
        writes: list[Doc] = []
        for ddoc_id, want in self.desired.items():
            have = observed.design_docs.get(ddoc_id)
            version = ddocs.stamped_version(want)
            if (have is not None and ddocs.content_hash(have) == version
                    and ddocs.stamped_version(have) == version):
                continue
            doc = dict(want)
            if have is not None:
                doc["_rev"] = have["_rev"]
            writes.append(doc)
        # A design document carecouch installed that the couch directory no longer has.
        for ddoc_id, have in observed.design_docs.items():
            if ddoc_id not in self.desired and ddocs.is_managed(have):
                writes.append({"_id": ddoc_id, "_rev": have["_rev"], "_deleted": True})
        return writes

    def _events(self, target: Target, observed: Observed, versions: dict[str, str],
                ddoc_writes: list[Doc], security_changed: bool,
                wanted_security: Doc) -> list[AuditEvent]:
        record = observed.record or {}
        details: dict[str, Any]
        if not observed.recorded or not observed.db_exists:
            details = {"name": target.name, "team": target.team, "db": caseload_db(target.id),
                       "status": target.status, "design_docs": versions}
            if not observed.recorded and observed.db_exists:
                details["existing_db"] = True  # finishing an interrupted create
            if observed.recorded:
                details["missing_db"] = True  # recorded, but its database was deleted
            return [AuditEvent("caseload.create", target.id, details)]
        events: list[AuditEvent] = []
        was = record.get("status")
        if was != target.status:
            action = ("caseload.archive" if target.status == CaseloadState.ARCHIVED
                      else "caseload.unarchive")
            events.append(AuditEvent(action, target.id, {"from": was, "to": target.status}))
        elif security_changed:
            events.append(AuditEvent("caseload.security", target.id,
                                     {"found": observed.security, "set": wanted_security}))
        if ddoc_writes or record.get("design_docs") != versions:
            events.append(AuditEvent("caseload.upgrade", target.id, {
                "from": record.get("design_docs"), "to": versions,
                "written": [d["_id"] for d in ddoc_writes if not d.get("_deleted")],
                "removed": [d["_id"] for d in ddoc_writes if d.get("_deleted")]}))
        changes = {f: [record.get(f), getattr(target, f)] for f in ("name", "team")
                   if record.get(f) != getattr(target, f)}
        if changes:
            events.append(AuditEvent("caseload.update", target.id, {"changes": changes}))
        return events

    # -- execute ----------------------------------------------------------------------------

    def execute(self, plans: Sequence[Plan], *, tick: Tick | None = None) -> list[Plan]:
        """Apply the plans; returns them, or raises :class:`ProvisioningFailed` naming failures.

        Databases are worked on in parallel; audit entries and registry records are then
        written in one request each, only for the caseloads whose databases are complete.
        """
        todo = [p for p in plans if p.changed]
        if not todo:
            return list(plans)
        self.registry.ensure()
        self.audit.ensure()
        results = map_parallel(self._apply_db_steps, todo, workers=self.workers, tick=tick)
        failures = {p.id: str(r) for p, r in zip(todo, results, strict=True)
                    if isinstance(r, CarecouchError)}
        done = [p for p in todo if p.id not in failures]
        # Audit first: should the registry write fail, the re-run repeats the entry.
        self.audit.record_many([e for p in done for e in p.events])
        failures.update(self.registry.write([p.record for p in done if p.record is not None]))
        if failures:
            raise ProvisioningFailed(failures, len(todo))
        return list(plans)

    def _apply_db_steps(self, plan: Plan) -> Plan:
        db = self.client.db(caseload_db(plan.id))
        for kind, payload in plan.steps:
            if kind == "create_db":
                db.create(exist_ok=True)
            elif kind == "security":
                db.put_security(payload)
            else:
                db.put(payload)
        return plan

    # -- commands ---------------------------------------------------------------------------

    def apply(self, specs: Sequence[CaseloadSpec], *, dry_run: bool = False,
              observe_tick: Tick | None = None, write_tick: Tick | None = None) -> list[Plan]:
        """Bring every caseload of a manifest to what it says.

        The manifest sets name and team; it never changes a status: an archived caseload
        stays archived (but current), a destroyed one is left alone (``create`` revives it).
        """
        observed = self.observe([s.id for s in specs], tick=observe_tick)
        plans = []
        for spec in specs:
            seen = observed[spec.id]
            if seen.record is not None and seen.record.get("status") == CaseloadState.DESTROYED:
                plan = Plan(Target(spec.id, spec.name, spec.team), seen,
                            note="destroyed; `carecouch caseload create` recreates it")
            else:
                plan = self.plan(Target(spec.id, spec.name, spec.team, _status(seen)), seen)
            plans.append(plan)
        if dry_run:
            return plans
        return self.execute(plans, tick=write_tick)

    def create(self, caseload_id: str, *, name: str | None = None,
               team: str | None = None) -> Plan:
        """Create a caseload (or finish an interrupted create, or restore an archived one)."""
        caseload_id = check_caseload_id(caseload_id)
        seen = self.observe([caseload_id])[caseload_id]
        record = seen.record if seen.recorded else None
        if record is not None and record.get("status") == CaseloadState.ACTIVE:
            raise CaseloadExists(f"caseload {caseload_id} already exists (use `carecouch "
                                 "caseload apply` to change it)")
        target = Target(caseload_id, name or (record or {}).get("name") or caseload_id,
                        team if team is not None else (record or {}).get("team"))
        return self.execute([self.plan(target, seen)])[0]

    def archive(self, caseload_id: str) -> Plan:
        """Remove member access, keep the data (admins can still read it)."""
        return self._set_status(caseload_id, CaseloadState.ARCHIVED)

    def unarchive(self, caseload_id: str) -> Plan:
        """Give members their access back (design documents brought up to date first)."""
        return self._set_status(caseload_id, CaseloadState.ACTIVE)

    def _set_status(self, caseload_id: str, status: str) -> Plan:
        caseload_id = check_caseload_id(caseload_id)
        seen = self.observe([caseload_id])[caseload_id]
        if not seen.recorded or seen.record is None:
            state = "was destroyed" if seen.record else "does not exist"
            raise CaseloadNotFound(f"caseload {caseload_id} {state}")
        target = Target(caseload_id, str(seen.record.get("name") or caseload_id),
                        seen.record.get("team"), status, sync_design=status == CaseloadState.ACTIVE)
        return self.execute([self.plan(target, seen)])[0]

    def destroy(self, caseload_id: str, *, dry_run: bool = False) -> Destroyed:
        """Delete the caseload database; the registry keeps the caseload as ``destroyed``.

        Order: delete, audit, record. A failure after the delete is finished by re-running.
        """
        caseload_id = check_caseload_id(caseload_id)
        record = self.registry.caseload(caseload_id)
        db = self.client.db(caseload_db(caseload_id))
        info = db.info_or_none()
        if record is None and info is None:
            raise CaseloadNotFound(f"caseload {caseload_id} does not exist")
        doc_count = int(info["doc_count"]) if info is not None else None
        if info is None and record is not None and record.get("status") == CaseloadState.DESTROYED:
            return Destroyed(caseload_id, db.name, None, changed=False)
        result = Destroyed(caseload_id, db.name, doc_count, changed=True)
        if dry_run:
            return result
        self.registry.ensure()
        self.audit.ensure()
        if info is not None:
            db.destroy(missing_ok=True)
        name = str((record or {}).get("name") or caseload_id)
        team = (record or {}).get("team")
        self.audit.record("caseload.destroy", caseload_id,
                          {"db": db.name, "doc_count": doc_count, "name": name, "team": team,
                           "was": (record or {}).get("status")})
        refused = self.registry.write([caseload_record(
            caseload_id, name=name, team=team, status=CaseloadState.DESTROYED, design_docs={},
            previous=record)])
        if refused:
            raise ProvisioningFailed(refused, 1)
        return result
