"""The access policy: who gets which clinical roles, caseloads, record types and device filter.

IT keeps the policy in one YAML file (format: docs/bridge.md, "The policy file"; example:
``examples/policy.yaml``). :func:`load_policy` checks it completely against the record-type
registry, naming the line of any mistake; :meth:`Policy.evaluate` says what one user of the
identity provider gets, and why, from the caseloads the registry holds (caseloads can be
granted by team). The bridge turns the result into CouchDB roles; ``carecouch policy explain``
prints it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from .ids import (
    CLINICAL_PREFIX,
    RESOLVER_ROLE,
    WRITES_PREFIX,
    WRITES_RESTRICTED_ROLE,
    caseload_db,
    check_caseload_id,
    check_user_id,
    member_role,
    scoped_role,
)
from .policy_file import PolicyError, Reader, line_of
from .records import SUBJECT_PATTERN, Registry, load_registry
from .registry import CaseloadState

MINUTE, HOUR, DAY = 60, 3600, 86400
RULE_KEYS = ("name", "users", "groups", "clinical_roles", "caseloads", "teams", "record_types",
             "resolver", "filter", "credential_lifetime", "offline_grace", "max_documents",
             "max_bytes")
FILTER_KEYS = ("types", "time_window", "pinned_subjects", "attachment_retention")
TOP_KEYS = ("version", "defaults", "admins", "break_glass", "rules")
DEFAULT_KEYS = ("credential_lifetime", "offline_grace", "lease_lifetime", "filter",
                "max_documents", "max_bytes")
# How much a device may hold of its working set (documents, bytes of JSON and attachments),
# all caseloads together: the bridge refuses credentials beyond it (bridge/credentials.py).
LIMIT_KEYS = ("max_documents", "max_bytes")
__all__ = ["Filter", "Grant", "Policy", "PolicyError", "Rule", "load_policy", "parse_policy"]


@dataclass(frozen=True)
class Filter:
    """What a device holds of a caseload: record types (None: all), how far back append-only
    records go (seconds; None: all time), and patients pinned whatever their records' age."""

    types: tuple[str, ...] | None = None
    time_window: int | None = None
    pinned_subjects: tuple[str, ...] = ()
    # How long a device keeps an attachment's data (a wound photo) once the server holds it
    # (seconds; None: as long as the record): the record stays, the photo goes.
    attachment_retention: int | None = None

    def union(self, other: Filter) -> Filter:
        """The least restrictive of two: a filter only minimises, so granting a caseload twice
        must never hide what either grant shows."""
        types = (None if self.types is None or other.types is None
                 else tuple(sorted(set(self.types) | set(other.types))))
        window = (None if self.time_window is None or other.time_window is None
                  else max(self.time_window, other.time_window))
        pinned = tuple(sorted(set(self.pinned_subjects) | set(other.pinned_subjects)))
        keep = (None if self.attachment_retention is None or other.attachment_retention is None
                else max(self.attachment_retention, other.attachment_retention))
        return Filter(types, window, pinned, keep)

    def query_params(self, now: datetime) -> dict[str, str]:
        """The query parameters of the ``carecouch/device`` replication filter
        (couch/design_docs/carecouch/filters/device.js) at ``now``."""
        params: dict[str, str] = {}
        if self.types is not None:
            params["types"] = ",".join(self.types)
        if self.time_window is not None:
            since = now - timedelta(seconds=self.time_window)
            params["not_before"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.pinned_subjects:
            params["subjects"] = ",".join(self.pinned_subjects)
        return params

    def as_json(self) -> dict[str, Any]:
        return {"types": list(self.types) if self.types is not None else None,
                "time_window_seconds": self.time_window,
                "pinned_subjects": list(self.pinned_subjects),
                "attachment_retention_seconds": self.attachment_retention}


@dataclass(frozen=True)
class Who:
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    def matches(self, user: str, groups: Iterable[str]) -> bool:
        return user in self.users or bool(self.groups & set(groups))


@dataclass(frozen=True)
class Rule:
    name: str
    line: int
    who: Who
    clinical_roles: tuple[str, ...]
    caseloads: tuple[str, ...]
    teams: tuple[str, ...]
    record_types: tuple[str, ...] | None
    resolver: bool
    filter: Filter | None
    credential_lifetime: int | None
    offline_grace: int | None
    limits: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CaseloadGrant:
    """One caseload as granted: its filter, and the roles and record types that hold in it
    (the union of the rules that grant it, and only those)."""

    id: str
    db: str
    filter: Filter
    reasons: tuple[str, ...]
    clinical_roles: tuple[str, ...] = ()
    resolver: bool = False
    record_types: tuple[str, ...] = ()
    narrowed: bool = False  # the types are fewer than the roles admit, in this caseload

    def couch_roles(self) -> list[str]:
        """The scoped CouchDB roles of this caseload (common.js hasRoleHere)."""
        roles = [member_role(self.id)]
        roles += [scoped_role(CLINICAL_PREFIX + r, self.id) for r in self.clinical_roles]
        if self.resolver:
            roles.append(scoped_role(RESOLVER_ROLE, self.id))
        if self.narrowed:
            roles.append(scoped_role(WRITES_RESTRICTED_ROLE, self.id))
            roles += [scoped_role(WRITES_PREFIX + t, self.id) for t in self.record_types]
        return roles

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "db": self.db, "filter": self.filter.as_json(),
                "reasons": list(self.reasons), "clinical_roles": list(self.clinical_roles),
                "resolver": self.resolver, "record_types": list(self.record_types),
                "record_types_narrowed": self.narrowed}


@dataclass
class Grant:
    """What the policy gives one user, and why (``reasons``, ``notes``)."""

    user: str
    groups: tuple[str, ...]
    rules: tuple[str, ...] = ()
    clinical_roles: tuple[str, ...] = ()
    resolver: bool = False
    caseloads: dict[str, CaseloadGrant] = field(default_factory=dict)
    record_types: tuple[str, ...] = ()
    narrowed: bool = False  # the types are fewer than the roles admit
    credential_lifetime: int = 8 * HOUR
    offline_grace: int = 3 * DAY
    lease_lifetime: int = 30 * MINUTE
    break_glass: bool = False
    break_glass_lifetime: int = HOUR
    admin: bool = False
    notes: list[str] = field(default_factory=list)
    limits: dict[str, int] = field(default_factory=dict)  # the lowest any source sets

    @property
    def any(self) -> bool:
        return bool(self.rules)

    def couch_roles(self, extra_caseloads: Iterable[str] = ()) -> list[str]:
        """The CouchDB roles of a device session holding this grant: per caseload, the
        membership and the roles that hold there only. A caseload outside the policy
        (break-glass) gets the user's roles and record types across all their rules."""
        roles: list[str] = []
        for caseload in self.caseloads.values():
            roles += caseload.couch_roles()
        for extra in sorted(set(extra_caseloads) - set(self.caseloads)):
            roles += self.as_caseload(extra).couch_roles()
        return roles

    def as_caseload(self, caseload_id: str) -> CaseloadGrant:
        """This grant's roles and types across all its rules, in ``caseload_id``."""
        return CaseloadGrant(caseload_id, caseload_db(caseload_id), Filter(), (),
                             self.clinical_roles, self.resolver, self.record_types,
                             self.narrowed)

    def as_json(self) -> dict[str, Any]:
        return {
            "user": self.user, "groups": list(self.groups), "rules": list(self.rules),
            "clinical_roles": list(self.clinical_roles), "resolver": self.resolver,
            "caseloads": [c.as_json() for c in self.caseloads.values()],
            "record_types": list(self.record_types), "record_types_narrowed": self.narrowed,
            "credential_lifetime_seconds": self.credential_lifetime,
            "offline_grace_seconds": self.offline_grace,
            "lease_lifetime_seconds": self.lease_lifetime,
            "break_glass": self.break_glass,
            "break_glass_lifetime_seconds": self.break_glass_lifetime,
            "admin": self.admin, "roles": self.couch_roles(), "notes": list(self.notes),
            "limits": dict(self.limits)}


@dataclass(frozen=True)
class Policy:
    source: str
    version: str  # sha256 of the file's bytes (first 16 hex digits)
    rules: tuple[Rule, ...]
    credential_lifetime: int
    offline_grace: int
    lease_lifetime: int
    filter: Filter
    admins: Who
    break_glass: Who
    break_glass_lifetime: int
    registry: Registry
    limits: Mapping[str, int] = field(default_factory=dict)

    def caseload_scope(self, user: str, groups: Iterable[str]) -> tuple[set[str], set[str]]:
        """The caseload ids and teams the rules matching ``user`` name: :meth:`evaluate`
        needs the registry's records of those only."""
        groups = tuple(groups)
        ids: set[str] = set()
        teams: set[str] = set()
        for rule in self.rules:
            if rule.who.matches(user, groups):
                ids |= set(rule.caseloads)
                teams |= set(rule.teams)
        return ids, teams

    def evaluate(self, user: str, groups: Iterable[str],
                 caseloads: Mapping[str, Mapping[str, Any]]) -> Grant:
        """What ``user`` (in ``groups``) gets; ``caseloads`` are the registry's records by id
        (all of them, or at least those of :meth:`caseload_scope`)."""
        groups = tuple(sorted(set(groups)))
        grant = Grant(user=user, groups=groups,
                      credential_lifetime=self.credential_lifetime,
                      offline_grace=self.offline_grace, lease_lifetime=self.lease_lifetime,
                      break_glass=self.break_glass.matches(user, groups),
                      break_glass_lifetime=min(self.break_glass_lifetime,
                                               self.credential_lifetime),
                      admin=self.admins.matches(user, groups), limits=dict(self.limits))
        matched = [rule for rule in self.rules if rule.who.matches(user, groups)]
        grant.rules = tuple(rule.name for rule in matched)
        roles: set[str] = set()
        types: set[str] = set()
        for rule in matched:
            roles |= set(rule.clinical_roles)
            grant.resolver = grant.resolver or rule.resolver
            types |= self._rule_types(rule)
            if rule.credential_lifetime is not None:
                grant.credential_lifetime = min(grant.credential_lifetime,
                                                rule.credential_lifetime)
            if rule.offline_grace is not None:
                grant.offline_grace = min(grant.offline_grace, rule.offline_grace)
            for key, value in rule.limits.items():
                grant.limits[key] = min(grant.limits.get(key, value), value)
            self._grant_caseloads(grant, rule, caseloads)
        grant.clinical_roles, grant.record_types, grant.narrowed = self._scope(
            roles, grant.resolver, types)
        grant.break_glass_lifetime = min(grant.break_glass_lifetime, grant.credential_lifetime)
        return grant

    def _scope(self, roles: Iterable[str], resolver: bool, types: Iterable[str]
               ) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
        """(roles, the types they may write of ``types``, whether that narrows them)."""
        admitted = set(self.registry.writable_with(self._couch_roles(roles, resolver)))
        writable = tuple(sorted(set(types) & admitted))
        return tuple(sorted(set(roles))), writable, set(writable) != admitted

    @staticmethod
    def _couch_roles(clinical: Iterable[str], resolver: bool) -> list[str]:
        return [CLINICAL_PREFIX + r for r in clinical] + ([RESOLVER_ROLE] if resolver else [])

    def _rule_types(self, rule: Rule) -> set[str]:
        admitted = set(self.registry.writable_with(
            self._couch_roles(rule.clinical_roles, rule.resolver)))
        return admitted if rule.record_types is None else admitted & set(rule.record_types)

    def _grant_caseloads(self, grant: Grant, rule: Rule,
                         caseloads: Mapping[str, Mapping[str, Any]]) -> None:
        wanted: dict[str, str] = {c: f"rule {rule.name!r} (line {rule.line}) lists it"
                                  for c in rule.caseloads}
        for caseload_id, found in sorted(caseloads.items()):
            team = found.get("team")
            if team in rule.teams and found.get("status") == CaseloadState.ACTIVE:
                wanted.setdefault(caseload_id, f"rule {rule.name!r} (line {rule.line}): "
                                  f"team {team}")
        rule_filter = rule.filter or self.filter
        for caseload_id, reason in wanted.items():
            record = caseloads.get(caseload_id)
            if record is None or record.get("status") != CaseloadState.ACTIVE:
                state = "does not exist" if record is None else f"is {record.get('status')}"
                grant.notes.append(f"caseload {caseload_id} {state}: not granted ({reason})")
                continue
            have = grant.caseloads.get(caseload_id)
            if have is None:
                have = CaseloadGrant(caseload_id, caseload_db(caseload_id), rule_filter, ())
                types: set[str] = set()
            else:
                have = replace(have, filter=have.filter.union(rule_filter))
                types = set(have.record_types)
            roles, writable, narrowed = self._scope(
                {*have.clinical_roles, *rule.clinical_roles}, have.resolver or rule.resolver,
                types | self._rule_types(rule))
            grant.caseloads[caseload_id] = replace(
                have, reasons=(*have.reasons, reason), clinical_roles=roles,
                resolver=have.resolver or rule.resolver, record_types=writable,
                narrowed=narrowed)


def load_policy(path: Path, registry: Registry | None = None) -> Policy:
    """Read and check the policy file (the registry defaults to the project's)."""
    source = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(source, None, f"cannot read the policy file ({exc.strerror})") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PolicyError(source, None, f"not UTF-8 text ({exc.reason})") from exc
    return parse_policy(text, source, registry or load_registry(),
                        version=hashlib.sha256(data).hexdigest()[:16])


def parse_policy(text: str, source: str, registry: Registry, *, version: str = "") -> Policy:
    reader = Reader(source)
    root = reader.compose(text)
    top = reader.mapping(root, "the policy", TOP_KEYS, required=("version", "rules"))
    version_node = top["version"][1]
    if reader.text(version_node, "version") != "1":
        raise reader.fail(version_node, "version must be 1 (the only policy format so far)")
    parser = _Parser(reader, registry)
    defaults = reader.mapping(top["defaults"][1], "defaults", DEFAULT_KEYS) \
        if "defaults" in top else {}
    lifetime = parser.lifetime(defaults, "credential_lifetime", 8 * HOUR)
    offline = parser.lifetime(defaults, "offline_grace", 3 * DAY)
    lease = parser.lifetime(defaults, "lease_lifetime", 30 * MINUTE)
    base_filter = parser.filter(defaults["filter"][1], Filter()) if "filter" in defaults \
        else Filter()
    admins = parser.who(top["admins"][1], "admins") if "admins" in top else Who()
    glass, glass_lifetime = Who(), HOUR
    if "break_glass" in top:
        section = reader.mapping(top["break_glass"][1], "break_glass",
                                 ("users", "groups", "lifetime"))
        glass = parser.who_of(section)
        glass_lifetime = parser.lifetime(section, "lifetime", HOUR, high=DAY)
    rules_node = top["rules"][1]
    if not isinstance(rules_node, yaml.SequenceNode) or not rules_node.value:
        raise reader.fail(rules_node, "rules must be a non-empty list")
    rules: list[Rule] = []
    for node in rules_node.value:
        rule = parser.rule(node, base_filter)
        if any(r.name == rule.name for r in rules):
            raise reader.fail(node, f"rule name {rule.name!r} is used twice")
        rules.append(rule)
    return Policy(source=source, version=version or hashlib.sha256(
                      text.encode()).hexdigest()[:16],
                  rules=tuple(rules), credential_lifetime=lifetime, offline_grace=offline,
                  lease_lifetime=lease, filter=base_filter, admins=admins, break_glass=glass,
                  break_glass_lifetime=glass_lifetime, registry=registry,
                  limits=parser.limits(defaults))


class _Parser:
    def __init__(self, reader: Reader, registry: Registry) -> None:
        self.reader = reader
        self.registry = registry
        self.clinical = sorted({w.removeprefix(CLINICAL_PREFIX) for t in registry.types.values()
                                for w in t.writers if w.startswith(CLINICAL_PREFIX)})

    def lifetime(self, section: Mapping[str, tuple[yaml.Node, yaml.Node]], key: str,
                 default: int, *, high: int = 90 * DAY) -> int:
        if key not in section:
            return default
        return self.reader.duration(section[key][1], key, low=1, high=high)

    def limits(self, section: Mapping[str, tuple[yaml.Node, yaml.Node]]) -> dict[str, int]:
        return {key: self.reader.amount(section[key][1], key)
                for key in LIMIT_KEYS if key in section}

    def who(self, node: yaml.Node, what: str) -> Who:
        return self.who_of(self.reader.mapping(node, what, ("users", "groups")))

    def who_of(self, section: Mapping[str, tuple[yaml.Node, yaml.Node]]) -> Who:
        users = self.reader.texts(section["users"][1], "users", check_user_id) \
            if "users" in section else ()
        groups = self.reader.texts(section["groups"][1], "groups") if "groups" in section else ()
        return Who(frozenset(users), frozenset(groups))

    def filter(self, node: yaml.Node, base: Filter) -> Filter:
        """A filter; what it does not say comes from ``base`` (the defaults' filter)."""
        section = self.reader.mapping(node, "filter", FILTER_KEYS)
        types = self.types(section["types"][1]) if "types" in section else base.types
        window = (self.reader.duration(section["time_window"][1], "time_window", low=HOUR,
                                       high=3650 * DAY)
                  if "time_window" in section else base.time_window)
        pinned = self.reader.texts(section["pinned_subjects"][1], "pinned_subjects",
                                   _subject) if "pinned_subjects" in section \
            else base.pinned_subjects
        keep = (self.reader.duration(section["attachment_retention"][1],
                                     "attachment_retention", low=60, high=3650 * DAY)
                if "attachment_retention" in section else base.attachment_retention)
        return Filter(types, window, tuple(sorted(pinned)), keep)

    def types(self, node: yaml.Node) -> tuple[str, ...]:
        def known(name: str) -> str:
            if name not in self.registry.types:
                raise ValueError(f"unknown record type {name!r} (known: "
                                 f"{', '.join(sorted(self.registry.types))})")
            return name
        return tuple(sorted(self.reader.texts(node, "record type", known)))

    def role(self, name: str) -> str:
        bare = name.removeprefix(CLINICAL_PREFIX)
        if bare not in self.clinical:
            raise ValueError(f"unknown clinical role {name!r} (the record-type registry knows "
                             f"{', '.join(self.clinical)})")
        return bare

    def rule(self, node: yaml.Node, base_filter: Filter) -> Rule:
        reader = self.reader
        section = reader.mapping(node, "a rule", RULE_KEYS, required=("name",))
        name = reader.text(section["name"][1], "name")
        who = self.who_of(section)
        if not who.users and not who.groups:
            raise reader.fail(node, f"rule {name!r} names no users and no groups")
        roles = tuple(sorted(reader.texts(section["clinical_roles"][1], "clinical_roles",
                                          self.role))) if "clinical_roles" in section else ()
        resolver = reader.flag(section["resolver"][1], "resolver") \
            if "resolver" in section else False
        caseloads = reader.texts(section["caseloads"][1], "caseloads", check_caseload_id) \
            if "caseloads" in section else ()
        teams = reader.texts(section["teams"][1], "teams") if "teams" in section else ()
        types = self.types(section["record_types"][1]) if "record_types" in section else None
        if types is not None:
            admitted = set(self.registry.writable_with(
                Policy._couch_roles(roles, resolver)))
            refused = [t for t in types if t not in admitted]
            if refused:
                raise reader.fail(section["record_types"][1],
                                  f"rule {name!r}: its roles cannot write {', '.join(refused)} "
                                  "(the record-type registry decides who writes what)")
        return Rule(
            name=name, line=line_of(node), who=who, clinical_roles=roles,
            caseloads=caseloads, teams=teams, record_types=types, resolver=resolver,
            filter=self.filter(section["filter"][1], base_filter) if "filter" in section
            else None,
            credential_lifetime=self.lifetime(section, "credential_lifetime", 0) or None,
            offline_grace=self.lifetime(section, "offline_grace", 0) or None,
            limits=self.limits(section))


def _subject(value: str) -> str:
    if not SUBJECT_PATTERN.fullmatch(value):  # the form the record rules require of `subject`
        raise ValueError(f"bad patient id {value!r}: use letters, digits and '.', '_', ':', '-'")
    return value
